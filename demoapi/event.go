package demoapi

import (
	"math/bits"
	"sort"
	"strconv"
)

// Events are never stored. Original event i (0 <= i < events) is a pure function of the seed and i: its
// hour comes from the calendar, its time is spread evenly inside the hour, and a hash of i picks a user
// among those already created, then a feature from that user's customer mix. Times therefore never
// decrease with i, so (updated_at, id) order is index order and updated_since is a binary search.
//
// Update j (index events+j) re-sends original orig(j) with revised properties. orig(j) is strictly
// increasing in j, and every update's updated_at is after every original's, so index order stays
// (updated_at, id) order across the whole stream.

// updateLag is how long after occurred_at an original event is last updated.
const updateLag = 3

// Updates are re-sent within updateWindow seconds starting updateDelay seconds after Now.
const (
	updateDelay  = 60
	updateWindow = 600
)

// eventRec is an event in compact form: the server renders it without building strings.
type eventRec struct {
	num      int64 // the id's number, 1-based
	occurred int64
	updated  int64
	user     int32
	duration int32
	feature  uint8
	client   uint8
	revision uint8
}

// eventCount is the number of records the event stream serves: originals, then updates.
func (d *dataset) eventCount() int64 { return d.events + d.updates }

// hourOf returns the hour of the span that holds original event i.
func (d *dataset) hourOf(i int64) int {
	return sort.Search(len(d.hourElig), func(h int) bool { return d.hourStart[h+1] > i })
}

// occurredAt is the occurred_at of original event i.
func (d *dataset) occurredAt(i int64) int64 { return d.occurredIn(i, d.hourOf(i)) }

// occurredIn is the occurred_at of original event i, which lies in hour h.
func (d *dataset) occurredIn(i int64, h int) int64 {
	first, n := d.hourStart[h], d.hourStart[h+1]-d.hourStart[h]
	return d.start + int64(h)*3600 + (i-first)*3600/n
}

// userOf picks the user of an original event among the users created before its hour h, by activity;
// hash is the event's eventHash(d.eventKey, i).
func (d *dataset) userOf(h int, hash uint64) int32 {
	elig := int(d.hourElig[h])
	r := pick(hash, d.userCum[elig])
	k := sort.Search(elig, func(j int) bool { return d.userCum[j+1] > r })
	return d.byCreated[k]
}

// original computes original event i.
func (d *dataset) original(i int64) eventRec {
	h := d.hourOf(i)
	hash := eventHash(d.eventKey, uint64(i))
	return d.originalAt(i, h, hash, d.userOf(h, hash))
}

// originalAt computes original event i from its hour h, its hash eventHash(d.eventKey, i) and its user u.
func (d *dataset) originalAt(i int64, h int, hash uint64, u int32) eventRec {
	occurred := d.occurredIn(i, h)
	x := mix(hash ^ golden)
	cum := d.featureCum[d.userCustomer[u]]
	r := pick(x, cum[len(cum)-1])
	f := 0
	for cum[f+1] <= r {
		f++
	}
	y := mix(x + golden)
	client := uint8(3) // api.call always comes from the API
	if Features[f] != "api.call" {
		r := pick(y, 100)
		client = 0
		for c := uint64(clientWeight[0]); r >= c; c += clientWeight[client] {
			client++
		}
	}
	v := float64(mix(y)>>11) / (1 << 53)
	return eventRec{
		num:      i + 1,
		occurred: occurred,
		updated:  occurred + updateLag,
		user:     u,
		duration: int32(featureDuration[f]*(0.2+2.5*v*v)) + 1,
		feature:  uint8(f),
		client:   client,
	}
}

// updateOrig returns the original index that update j re-sends: one pseudo-random event in each of
// `updates` equal slices of the originals, so the result grows strictly with j.
func (d *dataset) updateOrig(j int64) int64 {
	hi, lo := bits.Mul64(uint64(j), uint64(d.events))
	q, _ := bits.Div64(hi, lo, uint64(d.updates))
	stride := d.events / d.updates
	return int64(q) + int64(pick(eventHash(d.updateKey, uint64(j)), uint64(stride)))
}

// updateTime is the updated_at of update j.
func (d *dataset) updateTime(j int64) int64 {
	return d.now + updateDelay + j*updateWindow/d.updates
}

// event computes record i of the event stream.
func (d *dataset) event(i int64) eventRec {
	if i < d.events {
		return d.original(i)
	}
	j := i - d.events
	e := d.original(d.updateOrig(j))
	e.updated = d.updateTime(j)
	e.duration += 1 + int32(pick(eventHash(d.updateKey, ^uint64(j)), uint64(e.duration/2+10)))
	e.revision = 2
	return e
}

// eventUpdatedAt is the updated_at of record i of the event stream, without computing the rest.
func (d *dataset) eventUpdatedAt(i int64) int64 {
	if i < d.events {
		return d.occurredAt(i) + updateLag
	}
	return d.updateTime(i - d.events)
}

// eventCustomer is the customer of record i of the event stream, without computing the rest.
func (d *dataset) eventCustomer(i int64) int32 {
	if i >= d.events {
		i = d.updateOrig(i - d.events)
	}
	h := d.hourOf(i)
	return d.userCustomer[d.userOf(h, eventHash(d.eventKey, uint64(i)))]
}

// appendEvent renders e exactly as Event.AppendJSON renders the same event.
func (d *dataset) appendEvent(dst []byte, e eventRec) []byte {
	u := &d.users[e.user]
	dst = append(dst, `{"id":"evt_`...)
	dst = appendPadded(dst, uint64(e.num), 12)
	dst = append(dst, `","customer_id":"`...)
	dst = append(dst, u.CustomerID...)
	dst = append(dst, `","user_id":"`...)
	dst = append(dst, u.ID...)
	dst = append(dst, `","feature":"`...)
	dst = append(dst, Features[e.feature]...)
	dst = append(dst, `","occurred_at":`...)
	dst = appendTime(dst, e.occurred)
	dst = append(dst, `,"updated_at":`...)
	dst = appendTime(dst, e.updated)
	dst = append(dst, `,"properties":{"client":"`...)
	dst = append(dst, clients[e.client]...)
	dst = append(dst, `","duration_ms":`...)
	dst = strconv.AppendInt(dst, int64(e.duration), 10)
	if e.revision != 0 {
		dst = append(dst, `,"revision":`...)
		dst = strconv.AppendInt(dst, int64(e.revision), 10)
	}
	return append(dst, "}}"...)
}

// export converts the compact form to the exported Event.
func (d *dataset) export(e eventRec) Event {
	u := &d.users[e.user]
	return Event{
		ID:         "evt_" + string(appendPadded(nil, uint64(e.num), 12)),
		CustomerID: u.CustomerID,
		UserID:     u.ID,
		Feature:    Features[e.feature],
		OccurredAt: unix(e.occurred),
		UpdatedAt:  unix(e.updated),
		Properties: Properties{Client: clients[e.client], DurationMS: int(e.duration), Revision: int(e.revision)},
	}
}
