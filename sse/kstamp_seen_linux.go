package sse

import (
	"sync"
	"sync/atomic"
)

// seenCap bounds the stamps kept per connection. When full the newest is replaced: the
// oldest ones are those of the bytes read next (the first token's among them).
const seenCap = 8

// seenStamps are the watch's sightings of one connection's receive queue: every byte before
// offset end had arrived by stamp. Ends are increasing and stamps not decreasing, so the
// first sighting covering an offset has its earliest stamp. Safe for one watch and one reader.
type seenStamps struct {
	n    atomic.Int32 // len(list), read without the lock
	mu   sync.Mutex
	list [seenCap]sighting
}

type sighting struct{ end, stamp int64 }

// add records that the bytes before end had arrived by stamp (Unix ns).
func (s *seenStamps) add(end, stamp int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := int(s.n.Load())
	if n > 0 {
		last := s.list[n-1]
		if end <= last.end || stamp < last.stamp {
			return // says less than the last one (or the clock stepped back)
		}
	}
	if n == seenCap {
		n--
	}
	s.list[n] = sighting{end: end, stamp: stamp}
	s.n.Store(int32(n + 1))
}

// upTo is the earliest stamp by which the byte before offset end had arrived, 0 if no
// sighting covers it. Sightings of bytes before end are dropped: they have been read.
func (s *seenStamps) upTo(end int64) int64 {
	if s.n.Load() == 0 {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := int(s.n.Load())
	i := 0
	for i < n && s.list[i].end < end {
		i++
	}
	var stamp int64
	if i < n {
		stamp = s.list[i].stamp
	}
	copy(s.list[:], s.list[i:n])
	s.n.Store(int32(n - i))
	return stamp
}
