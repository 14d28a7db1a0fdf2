package scenario

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestOverlappingFaults(t *testing.T) {
	base, err := Load("../../testdata/scenarios/small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	at := base.Start.Add(time.Hour)
	cases := []struct {
		name   string
		faults []Fault
		bad    bool
	}{
		{"outage inside an outage", []Fault{
			{Kind: FaultDatabaseOutage, At: at, Duration: Duration(10 * time.Minute)},
			{Kind: FaultDatabaseOutage, At: at.Add(5 * time.Minute), Duration: Duration(time.Minute)}}, true},
		{"outages back to back", []Fault{
			{Kind: FaultDatabaseOutage, At: at, Duration: Duration(10 * time.Minute)},
			{Kind: FaultDatabaseOutage, At: at.Add(10 * time.Minute), Duration: Duration(time.Minute)}}, false},
		{"a crash while down", []Fault{
			{Kind: FaultAggregatorCrash, At: at, Duration: Duration(2 * time.Minute)},
			{Kind: FaultAggregatorCrash, At: at.Add(time.Minute)}}, true},
		{"one crash written twice", []Fault{
			{Kind: FaultAggregatorCrash, At: at}, {Kind: FaultAggregatorCrash, At: at}}, true},
		{"gaps on two nodes", []Fault{
			{Kind: FaultScrapeGap, Node: "t4-01", At: at, Duration: Duration(time.Hour)},
			{Kind: FaultScrapeGap, Node: "a30-01", At: at, Duration: Duration(time.Hour)}}, false},
		{"a gap on every node over a gap on one", []Fault{
			{Kind: FaultScrapeGap, Node: "t4-01", At: at, Duration: Duration(time.Hour)},
			{Kind: FaultScrapeGap, At: at.Add(time.Minute), Duration: Duration(time.Minute)}}, true},
		{"different kinds at once", []Fault{
			{Kind: FaultDatabaseOutage, At: at, Duration: Duration(time.Hour)},
			{Kind: FaultAggregatorCrash, At: at.Add(time.Minute)}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := *base
			s.Faults = c.faults
			err := Validate(&s)
			var ve *ValidationError
			switch {
			case c.bad && (!errors.As(err, &ve) || !strings.Contains(err.Error(), "faults[1]: ") || !strings.Contains(err.Error(), "overlaps faults[0]")):
				t.Errorf("want an overlap error naming faults[1], got %v", err)
			case !c.bad && err != nil:
				t.Errorf("valid faults rejected: %v", err)
			}
		})
	}
}
