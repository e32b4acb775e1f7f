// Package orgsapi is a small, deterministic fixture of a second export API, with another shape than the demo
// API's: organisations identified by integer ids, members listed per organisation as NDJSON, and an
// activity feed, with camelCase fields, epoch-millisecond timestamps, nested objects, offset pagination and
// an API key in a header. The end-to-end test of examples/orgs serves it with httptest and compares what
// each tenant reads with the truth this package returns (Orgs, Members, Activities).
//
//	GET /orgs?offset=0&limit=2                       {"items":[{"orgId":101,...}],"total":3}
//	GET /orgs/101/members?offset=0&limit=3&updatedSince=MS    NDJSON, one member per line, no orgId
//	GET /activities?offset=0&limit=50&updatedSince=MS          {"results":[...],"paging":{"hasMore":true}}
//
// Members and activities come in ascending (updatedAt, id) order, filtered on updatedAt >= updatedSince.
// Every request needs the header X-Api-Key; without the right key the answer is 401.
package orgsapi

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Options shape the data set. Zero values take the defaults.
type Options struct {
	Orgs          int       // organisations (default 3), ids 101, 102, ...
	MembersPerOrg int       // members of the first org (default 4); org i has MembersPerOrg + i
	Activities    int       // activities over all orgs (default 240); org i gets a share of weight i+1
	Start         time.Time // createdAt of the first activity (default 2026-03-02T08:00:00Z)
	Key           string    // the API key (default "orgs-key")
}

// Org is an organisation, the tenant.
type Org struct {
	OrgID       int64   `json:"orgId"`
	Slug        string  `json:"slug"`
	DisplayName string  `json:"displayName"`
	Tier        string  `json:"tier"`
	Billing     Billing `json:"billing"`
	CreatedAt   int64   `json:"createdAt"` // epoch milliseconds
	UpdatedAt   int64   `json:"updatedAt"`
}

// Member is a person of an organisation. Its record does not name the org: the path does.
type Member struct {
	OrgID     int64   `json:"-"`
	MemberID  int64   `json:"memberId"`
	Profile   Profile `json:"profile"`
	Access    string  `json:"access"`
	JoinedAt  int64   `json:"joinedAt"`
	UpdatedAt int64   `json:"updatedAt"`
}

// Activity is one thing a member did in a project.
type Activity struct {
	ActivityID int64   `json:"activityId"`
	OrgID      int64   `json:"orgId"`
	Kind       string  `json:"kind"`
	Actor      Actor   `json:"actor"`
	Project    Project `json:"project"`
	DurationMs int64   `json:"durationMs"`
	CreatedAt  int64   `json:"createdAt"` // when it happened, epoch milliseconds
	UpdatedAt  int64   `json:"updatedAt"`
}

// The nested objects: Org.billing, Member.profile, Activity.actor and Activity.project.
type (
	Billing struct {
		Currency string `json:"currency"`
		Seats    int64  `json:"seats"`
	}
	Profile struct {
		FullName string `json:"fullName"`
		Email    string `json:"email"`
	}
	Actor struct {
		MemberID int64  `json:"memberId"`
		Handle   string `json:"handle"`
	}
	Project struct {
		ProjectID int64  `json:"projectId"`
		Key       string `json:"key"`
	}
)

// Server is the fixture API; it is an http.Handler, safe for concurrent use.
type Server struct {
	key        string
	mux        *http.ServeMux
	mu         sync.Mutex
	orgs       []Org
	members    []Member   // by org, then memberId
	activities []Activity // by activityId
}

var (
	tiers    = []string{"free", "team", "enterprise"}
	accesses = []string{"owner", "editor", "viewer"}
	kinds    = []string{"issue.created", "issue.closed", "comment.added", "build.run", "deploy.started"}
	projKeys = []string{"WEB", "API", "OPS"}
)

// New builds the data set of opts.
func New(opts Options) *Server {
	opts.Orgs, opts.MembersPerOrg, opts.Activities = cmp.Or(opts.Orgs, 3), cmp.Or(opts.MembersPerOrg, 4), cmp.Or(opts.Activities, 240)
	opts.Key = cmp.Or(opts.Key, "orgs-key")
	if opts.Start.IsZero() {
		opts.Start = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	}
	s := &Server{key: opts.Key, mux: http.NewServeMux()}
	start := opts.Start.UnixMilli()
	const day, minute = int64(86_400_000), int64(60_000)
	var share []int // org index of each slot of the weighted round
	for i := range opts.Orgs {
		id := int64(101 + i)
		created := start - int64(30*(i+1))*day
		s.orgs = append(s.orgs, Org{OrgID: id, Slug: "org-" + strconv.Itoa(i+1), DisplayName: "Org Number " + strconv.Itoa(i+1),
			Tier: tiers[i%len(tiers)], Billing: Billing{Currency: []string{"EUR", "USD"}[i%2], Seats: int64(10 * (i + 1))},
			CreatedAt: created, UpdatedAt: created + int64(i)*3_600_000})
		for j := range opts.MembersPerOrg + i {
			m := Member{OrgID: id, MemberID: id*100 + int64(j+1), Access: accesses[j%len(accesses)],
				Profile:  Profile{FullName: "Member " + strconv.Itoa(j+1) + " of " + strconv.Itoa(i+1), Email: "m" + strconv.Itoa(j+1) + "@org" + strconv.Itoa(i+1) + ".example"},
				JoinedAt: created + int64(j)*day}
			m.UpdatedAt = m.JoinedAt + int64(j)*minute
			s.members = append(s.members, m)
		}
		share = append(share, slices.Repeat([]int{i}, i+1)...)
	}
	for k := range opts.Activities {
		org := s.orgs[share[k%len(share)]]
		ms := s.Members(org.OrgID)
		// Mixed so that every org spreads over its members and projects.
		actor := ms[(k/len(share)+3*k)%len(ms)]
		p := (5*k + k/len(share)) % len(projKeys)
		created := start + int64(k)*47*minute
		s.activities = append(s.activities, Activity{ActivityID: 500_001 + int64(k), OrgID: org.OrgID, Kind: kinds[k%len(kinds)],
			Actor:      Actor{MemberID: actor.MemberID, Handle: "h" + strconv.FormatInt(actor.MemberID, 10)},
			Project:    Project{ProjectID: org.OrgID*10 + int64(p+1), Key: projKeys[p]},
			DurationMs: int64(500 + (k*7919)%60_000), CreatedAt: created, UpdatedAt: created + int64(k%4)*minute})
	}
	s.mux.HandleFunc("GET /orgs", s.listOrgs)
	s.mux.HandleFunc("GET /orgs/{orgId}/members", s.listMembers)
	s.mux.HandleFunc("GET /activities", s.listActivities)
	return s
}

// ServeHTTP checks the API key and serves the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Api-Key") != s.key {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid api key"})
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Orgs returns the organisations, by id.
func (s *Server) Orgs() []Org {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.orgs)
}

// Members returns the members of org, by id.
func (s *Server) Members(org int64) []Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(s.members), func(m Member) bool { return m.OrgID != org })
}

// Activities returns the current version of every activity of org (0: of every org), by id.
func (s *Server) Activities(org int64) []Activity {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(s.activities), func(a Activity) bool { return org != 0 && a.OrgID != org })
}

// Touch changes every n-th activity (by position) at time at: kind "issue.reopened", a second longer, in
// the org's next project, updatedAt at. It returns the ids changed.
func (s *Server) Touch(n int, at time.Time) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []int64
	for k := 0; k < len(s.activities); k += n {
		a := &s.activities[k]
		p := int(a.Project.ProjectID-a.OrgID*10) % len(projKeys) // the index of the next project
		a.Kind, a.DurationMs, a.UpdatedAt = "issue.reopened", a.DurationMs+1000, at.UnixMilli()
		a.Project = Project{ProjectID: a.OrgID*10 + int64(p+1), Key: projKeys[p]}
		ids = append(ids, a.ActivityID)
	}
	return ids
}

func (s *Server) listOrgs(w http.ResponseWriter, r *http.Request) {
	orgs := s.Orgs()
	writeJSON(w, http.StatusOK, map[string]any{"items": window(orgs, r), "total": len(orgs)})
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request) {
	org, err := strconv.ParseInt(r.PathValue("orgId"), 10, 64)
	if err != nil || !slices.ContainsFunc(s.Orgs(), func(o Org) bool { return o.OrgID == org }) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such org"})
		return
	}
	ms := since(s.Members(org), r, func(m Member) (int64, int64) { return m.UpdatedAt, m.MemberID })
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w) // one JSON value per line
	for _, m := range window(ms, r) {
		enc.Encode(m)
	}
}

func (s *Server) listActivities(w http.ResponseWriter, r *http.Request) {
	as := since(s.Activities(0), r, func(a Activity) (int64, int64) { return a.UpdatedAt, a.ActivityID })
	page := window(as, r)
	off, _ := strconv.Atoi(r.URL.Query().Get("offset"))
	writeJSON(w, http.StatusOK, map[string]any{"results": page, "paging": map[string]any{"offset": off, "hasMore": off+len(page) < len(as)}})
}

// since keeps the records whose updatedAt is at least ?updatedSince= (epoch ms), in (updatedAt, id) order.
func since[T any](xs []T, r *http.Request, key func(T) (int64, int64)) []T {
	from, _ := strconv.ParseInt(r.URL.Query().Get("updatedSince"), 10, 64)
	xs = slices.DeleteFunc(xs, func(x T) bool { u, _ := key(x); return u < from })
	slices.SortFunc(xs, func(a, b T) int {
		ua, ia := key(a)
		ub, ib := key(b)
		return cmp.Or(cmp.Compare(ua, ub), cmp.Compare(ia, ib))
	})
	return xs
}

// window is the page ?offset=&limit= (default limit 100) of xs.
func window[T any](xs []T, r *http.Request) []T {
	q := r.URL.Query()
	off, _ := strconv.Atoi(q.Get("offset"))
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 {
		limit = 100
	}
	off = min(max(off, 0), len(xs))
	return xs[off:min(off+limit, len(xs))]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
