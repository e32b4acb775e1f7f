package demoapi

import "math/bits"

// The generator uses its own splitmix64 so the data depends only on the seed, never on the Go release
// (math/rand's streams are not promised to stay the same).

const golden = 0x9e3779b97f4a7c15

// mix is the splitmix64 finaliser: a cheap bijection whose output bits all depend on every input bit.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Streams keep the draws of different concepts independent for the same seed.
const (
	streamCustomers uint64 = iota + 1
	streamUsers
	streamCalendar
	streamEvents
	streamUpdates
	streamFeatures
)

// rng is a sequential splitmix64 generator, used to materialise customers, users and the calendar.
type rng struct{ state uint64 }

func newRNG(seed, stream uint64) *rng {
	return &rng{state: mix(seed^mix(stream*golden)) + stream}
}

func (r *rng) next() uint64 {
	r.state += golden
	return mix(r.state)
}

// float returns a uniform value in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// intn returns a uniform value in [0, n).
func (r *rng) intn(n int64) int64 { return int64(pick(r.next(), uint64(n))) }

// pick maps a uniform 64-bit value to [0, n) without division.
func pick(h, n uint64) uint64 {
	hi, _ := bits.Mul64(h, n)
	return hi
}

// eventHash is the random word of event i: a pure function of (seed, stream, i).
func eventHash(key, i uint64) uint64 { return mix(key + i*golden) }

// streamKey derives the per-stream key that eventHash mixes with an index.
func streamKey(seed, stream uint64) uint64 { return mix(seed ^ mix(stream*golden+1)) }
