package trace

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/fnv"
)

// uidNamespace is the RFC 4122 name-space UUID under which pod UIDs are
// derived (version 5, SHA-1 name-based).
var uidNamespace = [16]byte{0x6b, 0x1d, 0x4f, 0x3a, 0x92, 0xc0, 0x4e, 0x5b, 0x8a, 0x7e, 0x2d, 0x61, 0x0f, 0x3c, 0x95, 0xd4}

// podUID returns an RFC 4122 version 5 UUID for a pod, derived from the seed,
// the cluster and the pod name.
func podUID(seed uint64, cluster, pod string) string {
	h := sha1.New()
	h.Write(uidNamespace[:])
	fmt.Fprintf(h, "%d/%s/%s", seed, cluster, pod)
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return formatUUID(u)
}

// deviceUUID returns a device UUID in NVIDIA's form, prefix ("GPU" or
// "MIG") then 8-4-4-4-12 hex digits, derived from the seed and the parts.
func deviceUUID(prefix string, seed uint64, parts ...any) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s/%d", prefix, seed)
	for _, p := range parts {
		fmt.Fprintf(h, "/%v", p)
	}
	var u [16]byte
	copy(u[:], h.Sum(nil))
	return prefix + "-" + formatUUID(u)
}

func formatUUID(u [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return string(b[:])
}

// hash64 mixes the seed with a name; it seeds per-pod random generators and
// placement start points, so neither depends on which other pods a window
// holds.
func hash64(seed uint64, name string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	h.Write(b[:])
	h.Write([]byte(name))
	return mix64(h.Sum64())
}

// mix64 is the splitmix64 finaliser: it spreads FNV's nearby outputs over
// the whole range.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
