package tests

import (
	"cmp"
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/elt-dev/elt/tests/orgsapi"
	"github.com/elt-dev/elt/tests/pgtest"
)

// orgsProject is the second example project, whose shape differs from the default project's: tenant key
// org_id (bigint), integer ids, epoch-millisecond timestamps, nested records, NDJSON members, offset pages.
var orgsProject, _ = filepath.Abs("../examples/orgs")

// What a tenant reads in each published relation of examples/orgs.
type (
	orgRow struct {
		OrgID                             int64
		Slug, DisplayName, Tier, Currency string
		Seats                             int64
		CreatedAt                         time.Time
	}
	memberRow struct {
		MemberID                int64
		FullName, Email, Access string
		JoinedAt                time.Time
	}
	activityRow struct {
		ActivityID            int64
		Kind                  string
		ActorID, ProjectID    int64
		ProjectKey            string
		DurationMs            int64
		OccurredAt, UpdatedAt time.Time
	}
	dayRow struct {
		Day                                   time.Time
		Activities, ActiveMembers, DurationMs int64
	}
	projectRow struct {
		ProjectID           int64
		ProjectKey          string
		Activities, Members int64
		FirstAt, LastAt     time.Time
	}
	orgView struct {
		Orgs       []orgRow
		Members    []memberRow
		Activities []activityRow
		Days       []dayRow
		Projects   []projectRow
	}
)

func ms(v int64) time.Time { return time.UnixMilli(v).UTC() }

// orgTruth is what org's tenant should read, computed from the fixture alone.
func orgTruth(api *orgsapi.Server, org int64) orgView {
	var v orgView
	for _, o := range api.Orgs() {
		if o.OrgID == org {
			v.Orgs = append(v.Orgs, orgRow{o.OrgID, o.Slug, o.DisplayName, o.Tier, o.Billing.Currency, o.Billing.Seats, ms(o.CreatedAt)})
		}
	}
	for _, m := range api.Members(org) {
		v.Members = append(v.Members, memberRow{m.MemberID, m.Profile.FullName, m.Profile.Email, m.Access, ms(m.JoinedAt)})
	}
	days := map[time.Time]*dayRow{}
	dayMembers := map[time.Time]map[int64]bool{}
	projects := map[int64]*projectRow{}
	projMembers := map[int64]map[int64]bool{}
	for _, a := range api.Activities(org) {
		at := ms(a.CreatedAt)
		v.Activities = append(v.Activities, activityRow{a.ActivityID, a.Kind, a.Actor.MemberID, a.Project.ProjectID, a.Project.Key, a.DurationMs, at, ms(a.UpdatedAt)})
		day := at.Truncate(24 * time.Hour)
		if days[day] == nil {
			days[day], dayMembers[day] = &dayRow{Day: day}, map[int64]bool{}
		}
		days[day].Activities++
		days[day].DurationMs += a.DurationMs
		dayMembers[day][a.Actor.MemberID] = true
		days[day].ActiveMembers = int64(len(dayMembers[day]))
		p := projects[a.Project.ProjectID]
		if p == nil {
			p = &projectRow{ProjectID: a.Project.ProjectID, ProjectKey: a.Project.Key, FirstAt: at, LastAt: at}
			projects[a.Project.ProjectID], projMembers[a.Project.ProjectID] = p, map[int64]bool{}
		}
		p.Activities++
		projMembers[p.ProjectID][a.Actor.MemberID] = true
		p.Members = int64(len(projMembers[p.ProjectID]))
		p.FirstAt, p.LastAt = minTime(p.FirstAt, at), maxTime(p.LastAt, at)
	}
	for _, d := range days {
		v.Days = append(v.Days, *d)
	}
	slices.SortFunc(v.Days, func(a, b dayRow) int { return a.Day.Compare(b.Day) })
	for _, p := range projects {
		v.Projects = append(v.Projects, *p)
	}
	slices.SortFunc(v.Projects, func(a, b projectRow) int { return cmp.Compare(a.ProjectID, b.ProjectID) })
	return v
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// readOrgView reads every published relation of examples/orgs through a tenant's own login (unqualified
// names: the tenant's schema is its search path).
func readOrgView(t *testing.T, conn *pgx.Conn) orgView {
	t.Helper()
	var v orgView
	err := errors.Join(
		queryInto(conn, &v.Orgs, `select org_id, slug, display_name, tier, currency, seats, created_at from orgs order by org_id`),
		queryInto(conn, &v.Members, `select member_id, full_name, email, access, joined_at from members order by member_id`),
		queryInto(conn, &v.Activities, `select activity_id, kind, actor_id, project_id, project_key, duration_ms, occurred_at, updated_at from activities order by activity_id`),
		queryInto(conn, &v.Days, `select day, activities, active_members, duration_ms from daily_activity order by day`),
		queryInto(conn, &v.Projects, `select project_id, project_key, activities, members, first_at, last_at from project_usage order by project_id`),
	)
	if err != nil {
		t.Fatalf("read the published relations as a tenant: %v", err)
	}
	return v
}

// queryInto reads the rows of sql into dst, column by column into the fields of T.
func queryInto[T any](conn *pgx.Conn, dst *[]T, sql string) error {
	rows, _ := conn.Query(context.Background(), sql) // an error comes back from CollectRows
	var err error
	*dst, err = pgx.CollectRows(rows, pgx.RowToStructByPos[T])
	return err
}

// Acceptance: the second example project (examples/orgs, another data shape) passes end to end with two
// tenants: extract the fixture API, refresh, add two orgs' logins, and each login reads exactly its own org's
// rows in every published relation, equal to the source; the report and the isolation audit pass; an
// incremental extract and refresh after the source changed some activities give the new values, and so does
// a full rebuild.
func TestOrgsExampleTwoTenants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewWith(t, pgtest.LoadProject(t, orgsProject))
	const key = "orgs-e2e-key-0123"
	api := orgsapi.New(orgsapi.Options{Key: key})
	ts := httptest.NewServer(api)
	defer ts.Close()
	base := []string{
		"DATABASE_URL=" + db.URLAs("elt_runner"),
		"ELT_PROJECT=" + orgsProject,
		"ORGS_API_URL=" + ts.URL,
	}
	env := append(slices.Clone(base), "ORGS_API_KEY="+key)
	run := func(args ...string) result {
		t.Helper()
		r := runElt(t, env, args...)
		if r.Code != 0 {
			t.Fatalf("elt %v: exit %d:\n%s%s", args, r.Code, r.Stdout, r.Stderr)
		}
		return r
	}

	// A wrong key is refused by the API (401), and elt says so without showing the key.
	bad := runElt(t, append(slices.Clone(base), "ORGS_API_KEY=wrong-key-98765", "ELT_LOG_LEVEL=error"), "extract")
	if bad.Code == 0 || !strings.Contains(bad.Stderr, "401") || strings.Contains(bad.Stdout+bad.Stderr, "wrong-key-98765") {
		t.Errorf("extract with a wrong key: exit %d, want non-zero naming 401 without the key:\n%s", bad.Code, bad.Stderr)
	}

	run("extract")
	run("refresh")

	orgs := api.Orgs()
	if len(orgs) != 3 {
		t.Fatalf("fixture has %d orgs, want 3", len(orgs))
	}
	// Two tenants; the third org (102) has no login: its rows stay in the default partitions.
	type login struct {
		org            int64
		role, password string
		pwFile         string
	}
	var logins []login
	for _, org := range []int64{orgs[0].OrgID, orgs[2].OrgID} {
		id := strconv.FormatInt(org, 10)
		pwFile := filepath.Join(t.TempDir(), id+".password")
		r := run("tenant", "add", id, "--password-to", pwFile)
		m := regexp.MustCompile(`login and schema (\S+)`).FindStringSubmatch(r.Stdout)
		if m == nil {
			t.Fatalf("tenant add %s: no login name in output:\n%s", id, r.Stdout)
		}
		logins = append(logins, login{org: org, role: m[1], password: readFile(t, pwFile), pwFile: pwFile})
	}

	verify := func(round string) {
		t.Helper()
		seen := map[int64]orgView{}
		for _, l := range logins {
			conn, err := pgx.Connect(ctx, db.ConnString(l.role, l.password))
			if err != nil {
				t.Fatalf("%s: connect as tenant %d: %v", round, l.org, err)
			}
			got := readOrgView(t, conn)
			// The private tables are out of reach, whatever the SQL.
			_, err = conn.Exec(ctx, `select count(*) from app.activities`)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
				t.Errorf("%s: tenant %d reading app.activities: %v, want permission denied", round, l.org, err)
			}
			conn.Close(ctx)
			want := orgTruth(api, l.org)
			if diff := gocmp.Diff(want, got); diff != "" {
				t.Errorf("%s: what org %d's login reads vs the source (-want +got):\n%s", round, l.org, diff)
			}
			if len(got.Members) == 0 || len(got.Activities) == 0 || len(got.Days) == 0 || len(got.Projects) == 0 {
				t.Errorf("%s: org %d reads empty relations: %d members, %d activities, %d days, %d projects",
					round, l.org, len(got.Members), len(got.Activities), len(got.Days), len(got.Projects))
			}
			seen[l.org] = got
			rep := run("tenant", "report", strconv.FormatInt(l.org, 10), "--password-from", l.pwFile)
			if !strings.Contains(rep.Stdout, "the owner reads the same rows") || !strings.Contains(rep.Stdout, "activities") {
				t.Errorf("%s: tenant report %d:\n%s", round, l.org, rep.Stdout)
			}
		}
		// No row of another org shows: the ids each login read are exactly its own org's, and the two
		// orgs' numbers differ.
		a, b := seen[logins[0].org], seen[logins[1].org]
		for _, x := range a.Activities {
			if slices.ContainsFunc(b.Activities, func(y activityRow) bool { return y.ActivityID == x.ActivityID }) {
				t.Errorf("%s: activity %d shows to both tenants", round, x.ActivityID)
			}
		}
		if len(a.Activities) == len(b.Activities) || len(a.Members) == len(b.Members) {
			t.Errorf("%s: both tenants read %d activities and %d members: want different numbers", round, len(a.Activities), len(a.Members))
		}
		if chk := runElt(t, env, "tenant", "check"); chk.Code != 0 {
			t.Errorf("%s: tenant check: exit %d:\n%s%s", round, chk.Code, chk.Stdout, chk.Stderr)
		}
	}
	verify("first run")

	// The source changes every 7th activity (of every org) ten days after the last one: an incremental
	// extract loads only those, and the refresh shows the new values in the tables and the marts.
	var before int64
	if err := db.Pool.QueryRow(ctx, `select count(*) from staging.activities`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	touched := api.Touch(7, time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC))
	run("extract")
	var after, members int64
	if err := db.Pool.QueryRow(ctx, `select (select count(*) from staging.activities), (select count(*) from staging.members)`).Scan(&after, &members); err != nil {
		t.Fatal(err)
	}
	if after-before != int64(len(touched)) {
		t.Errorf("second extract loaded %d activities, want the %d changed ones", after-before, len(touched))
	}
	var wantMembers int
	for _, o := range orgs {
		wantMembers += len(api.Members(o.OrgID))
	}
	if members != int64(wantMembers) {
		t.Errorf("staging.members holds %d rows after two extracts, want %d (no member changed)", members, wantMembers)
	}
	run("refresh")
	verify("after the incremental run")

	// A full rebuild from staging alone (every step empties its rebuild: tables, the tenants' partitions
	// included) gives the same rows.
	run("refresh", "--full")
	verify("after refresh --full")
}
