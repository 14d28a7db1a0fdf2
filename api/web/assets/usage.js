// The usage page: reads the caller's usage from the accounting API (the
// session cookie authenticates it) and draws the tables and the chart.
// Text reaches the page through textContent only, never as markup.
(function () {
  'use strict';

  var SVG = 'http://www.w3.org/2000/svg';
  var PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2',
    '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

  var root = document.getElementById('usage');
  if (!root) {
    return;
  }
  var status = document.getElementById('status');
  var chart = document.getElementById('chart');

  // months lists the months from "YYYY-MM" to "YYYY-MM", both included.
  function months(from, to) {
    var out = [];
    var y = Number(from.slice(0, 4));
    var m = Number(from.slice(5, 7));
    var end = to.slice(0, 7);
    for (var i = 0; i < 120; i++) {
      var s = y + '-' + (m < 10 ? '0' : '') + m;
      out.push(s);
      if (s >= end) {
        break;
      }
      m++;
      if (m > 12) {
        m = 1;
        y++;
      }
    }
    return out;
  }

  function hours(x) {
    return Number(x).toFixed(2);
  }

  function share(part, whole) {
    return whole > 0 ? (100 * part / whole).toFixed(1) + ' %' : '–';
  }

  function el(name, text, cls) {
    var e = document.createElement(name);
    if (text !== undefined) {
      e.textContent = text;
    }
    if (cls) {
      e.className = cls;
    }
    return e;
  }

  function svg(name, attrs) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) {
      e.setAttribute(k, String(attrs[k]));
    });
    return e;
  }

  // row appends a table row: keys text cells, then numbers.
  function row(tbody, keys, cells) {
    var tr = el('tr');
    cells.forEach(function (c, i) {
      tr.appendChild(el('td', c, i >= keys ? 'num' : undefined));
    });
    tbody.appendChild(tr);
  }

  // niceMax rounds a chart's top value up to 1, 2 or 5 times a power of ten.
  function niceMax(v) {
    if (v <= 0) {
      return 1;
    }
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (v <= steps[i] * p) {
        return steps[i] * p;
      }
    }
    return 10 * p;
  }

  function drawChart(ms, projects, byMonth) {
    var width = 760;
    var left = 56;
    var top = 12;
    var plotH = 220;
    var axisH = 40;
    var legendRow = 20;
    var perRow = 4;
    var legendH = Math.ceil(projects.length / perRow) * legendRow;
    var height = top + plotH + axisH + legendH;
    chart.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
    chart.setAttribute('width', width);
    chart.setAttribute('height', height);

    var max = 0;
    ms.forEach(function (m) {
      var t = 0;
      projects.forEach(function (p) {
        t += (byMonth[m] && byMonth[m][p]) || 0;
      });
      max = Math.max(max, t);
    });
    var yMax = niceMax(max);
    var plotW = width - left - 8;
    var slot = plotW / ms.length;
    var barW = Math.max(4, slot * 0.7);
    var y = function (v) {
      return top + plotH - (v / yMax) * plotH;
    };

    [0, 0.5, 1].forEach(function (f) {
      var v = yMax * f;
      chart.appendChild(svg('line', {x1: left, x2: width - 8, y1: y(v), y2: y(v), 'class': 'grid'}));
      var label = svg('text', {x: left - 6, y: y(v) + 4, 'text-anchor': 'end', 'class': 'axis'});
      label.textContent = String(Number(v.toPrecision(3)));
      chart.appendChild(label);
    });

    var bars = 0;
    ms.forEach(function (m, i) {
      var x = left + i * slot + (slot - barW) / 2;
      var base = 0;
      projects.forEach(function (p, j) {
        var v = (byMonth[m] && byMonth[m][p]) || 0;
        if (v <= 0) {
          return;
        }
        var rect = svg('rect', {
          x: x.toFixed(1), y: y(base + v).toFixed(1), width: barW.toFixed(1),
          height: Math.max(0.5, (v / yMax) * plotH).toFixed(1),
          fill: PALETTE[j % PALETTE.length], 'class': 'bar',
          'data-month': m, 'data-project': p, 'data-value': v.toFixed(6)
        });
        var tip = svg('title');
        tip.textContent = m + ' · ' + p + ': ' + hours(v) + ' GPU-h allocated';
        rect.appendChild(tip);
        chart.appendChild(rect);
        base += v;
        bars++;
      });
      var label = svg('text', {x: (x + barW / 2).toFixed(1), y: top + plotH + 16, 'text-anchor': 'middle', 'class': 'axis'});
      label.textContent = ms.length > 6 ? m.slice(2) : m;
      chart.appendChild(label);
    });

    projects.forEach(function (p, j) {
      var lx = left + (j % perRow) * ((width - left) / perRow);
      var ly = top + plotH + axisH + Math.floor(j / perRow) * legendRow;
      chart.appendChild(svg('rect', {x: lx, y: ly - 10, width: 12, height: 12, fill: PALETTE[j % PALETTE.length]}));
      var t = svg('text', {x: lx + 18, y: ly, 'class': 'legend'});
      t.textContent = p;
      chart.appendChild(t);
    });
    chart.setAttribute('data-bars', String(bars));
    chart.setAttribute('data-state', bars > 0 ? 'ready' : 'empty');
  }

  function render(doc) {
    var rows = doc.rows || [];
    var ms = months(root.dataset.from, root.dataset.to);
    var projects = [];
    var byMonth = {};
    var totals = {};
    var detail = document.querySelector('#detail tbody');
    rows.forEach(function (r) {
      var m = String(r.month).slice(0, 7);
      var a = Number(r.allocated_gpu_hours);
      if (projects.indexOf(r.project) < 0) {
        projects.push(r.project);
      }
      byMonth[m] = byMonth[m] || {};
      byMonth[m][r.project] = (byMonth[m][r.project] || 0) + a;
      var t = totals[r.project] || (totals[r.project] = {a: 0, u: 0, i: 0});
      t.a += a;
      t.u += Number(r.used_gpu_hours);
      t.i += Number(r.idle_gpu_hours);
      row(detail, 3, [m, r.project, r.user, hours(r.allocated_gpu_hours), hours(r.used_gpu_hours),
        hours(r.idle_gpu_hours), share(Number(r.idle_gpu_hours), a)]);
    });
    projects.sort();
    var byProject = document.querySelector('#by-project tbody');
    projects.forEach(function (p) {
      var t = totals[p];
      row(byProject, 1, [p, hours(t.a), hours(t.u), hours(t.i), share(t.i, t.a)]);
    });
    drawChart(ms, projects, byMonth);
    status.textContent = rows.length === 0
      ? 'No GPU usage in this period.'
      : rows.length + ' rows from ' + ms[0] + ' to ' + ms[ms.length - 1] + '.';
  }

  function fail(message) {
    status.textContent = message;
    status.className = 'notice';
    chart.setAttribute('data-state', 'error');
  }

  fetch(root.dataset.src, {credentials: 'same-origin', headers: {Accept: 'application/json'}})
    .then(function (resp) {
      if (resp.status === 401) {
        throw new Error('Your session has expired: reload the page to log in again.');
      }
      if (!resp.ok) {
        return resp.json().then(function (p) {
          throw new Error(p.detail || p.title || resp.statusText);
        }, function () {
          throw new Error('The usage could not be read (' + resp.status + ').');
        });
      }
      return resp.json();
    })
    .then(render)
    .catch(function (err) {
      fail(err.message);
    });
}());
