package generate

import (
	"hash/fnv"
	"math"
	"math/bits"
)

// rng is a splitmix64 generator. It is small and fast, and its sequence is
// defined here rather than by a library, so a seed gives the same scenario
// with every Go release. Each part of the generator draws from its own
// stream (hardware, arrivals of each pool, tenants, names), so changing one
// part leaves the others' draws unchanged.
type rng struct{ s uint64 }

// newRNG returns the stream named name of seed.
func newRNG(seed uint64, name string) *rng {
	h := fnv.New64a()
	h.Write([]byte(name))
	r := &rng{s: seed ^ h.Sum64()}
	r.next() // decorrelate streams whose seeds differ in few bits
	return r
}

func (r *rng) next() uint64 {
	r.s += 0x9E3779B97F4A7C15
	z := r.s
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// float returns a uniform value in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// intn returns a uniform value in [0, n); n > 0.
func (r *rng) intn(n int) int {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int(hi)
}

// exp returns an exponential variate with the given rate.
func (r *rng) exp(rate float64) float64 { return -math.Log(1-r.float()) / rate }

// between returns a uniform value in [lo, hi).
func (r *rng) between(lo, hi float64) float64 { return lo + (hi-lo)*r.float() }

// pick returns an index drawn with probability proportional to weights,
// which must not all be zero.
func (r *rng) pick(weights []float64) int {
	var sum float64
	for _, w := range weights {
		sum += w
	}
	u := r.float() * sum
	for i, w := range weights {
		if u < w {
			return i
		}
		u -= w
	}
	for i := len(weights) - 1; i >= 0; i-- { // rounding: the last positive weight
		if weights[i] > 0 {
			return i
		}
	}
	return 0
}

const hexDigits = "0123456789abcdef"

// uuid returns a random identifier in the 8-4-4-4-12 hexadecimal form. With
// v4 set it carries the version and variant bits of an RFC 9562 version 4
// UUID (Kubernetes pod UIDs); without, it is 128 random bits, as NVIDIA GPU
// and MIG UUIDs are.
func (r *rng) uuid(v4 bool) string {
	var b [16]byte
	x, y := r.next(), r.next()
	for i := range 8 {
		b[i] = byte(x >> (8 * i))
		b[8+i] = byte(y >> (8 * i))
	}
	if v4 {
		b[6] = b[6]&0x0f | 0x40
		b[8] = b[8]&0x3f | 0x80
	}
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hexDigits[c>>4], hexDigits[c&0x0f])
	}
	return string(out)
}

// podSuffixAlphabet is the alphabet Kubernetes uses for generated name
// suffixes (no vowels, no confusable digits).
const podSuffixAlphabet = "bcdfghjklmnpqrstvwxz2456789"

// suffix returns a random generated-name suffix of n characters.
func (r *rng) suffix(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = podSuffixAlphabet[r.intn(len(podSuffixAlphabet))]
	}
	return string(b)
}
