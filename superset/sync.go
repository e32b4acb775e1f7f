package superset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/elt-dev/elt/project"
)

// Names of what Sync manages in Superset for a tenant, by its key. A role named with RolePrefix is a
// tenant's; Sync removes what is named after a tenant only when the database records that tenant as removed.
const RolePrefix = "elt tenant "

// DatabaseName is the name of the tenant's Superset Database (what its analysts pick in SQL Lab).
func DatabaseName(key string) string { return key + " analytics" }

// RoleName is the Superset role that may use only the tenant's Database and schema.
func RoleName(key string) string { return RolePrefix + key }

var slugRE = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// Slug is the URL name of the tenant's starter dashboard (/superset/dashboard/<slug>/): elt-KEY, or for a
// key with other characters than letters, digits, _ and -, those replaced and a hash of the key appended, so
// that two keys never share a slug.
func Slug(key string) string {
	clean := slugRE.ReplaceAllString(key, "-")
	if clean == key {
		return "elt-" + key
	}
	sum := sha256.Sum256([]byte(key))
	return "elt-" + clean + "-" + hex.EncodeToString(sum[:4])
}

// createdEmail is the email of the user Sync creates for a tenant: it marks the users Sync may delete.
func createdEmail(key string) string {
	return slugRE.ReplaceAllString(key, "-") + "@tenant-users.elt.invalid"
}

// Superset's column sizes (ab_role.name, ab_user.username and first_name, dbs.database_name,
// dashboards.slug).
const maxRole, maxUser, maxDatabase, maxSlug = 64, 64, 250, 255

// checkNames refuses keys whose Superset names would be too long or shared, before anything changes.
func checkNames(keys []string) error {
	slugs := map[string]string{}
	var bad []string
	for _, k := range keys {
		switch {
		case len(RoleName(k)) > maxRole || len(k) > maxUser:
			bad = append(bad, fmt.Sprintf("%q: role %q is longer than Superset's %d characters", k, RoleName(k), maxRole))
		case len(DatabaseName(k)) > maxDatabase || len(Slug(k)) > maxSlug:
			bad = append(bad, fmt.Sprintf("%q: too long for a Superset Database name or dashboard slug", k))
		case slugs[Slug(k)] != "":
			bad = append(bad, fmt.Sprintf("%q and %q: the same dashboard slug %s", slugs[Slug(k)], k, Slug(k)))
		}
		slugs[Slug(k)] = k
	}
	if len(bad) > 0 {
		return fmt.Errorf("superset: tenant keys Superset cannot name (nothing was changed): %s", strings.Join(bad, "; "))
	}
	return nil
}

// Base roles every tenant user gets beside its own: Gamma (Superset without data access) and sql_lab.
var baseRoles = []string{"Gamma", "sql_lab"}

// Tenant is what Sync needs to know of one tenant.
type Tenant struct {
	Key    string // the customer's key, e.g. cus_0001
	Schema string // its schema (and login) in PostgreSQL
	// URI is the SQLAlchemy URI of the tenant's login, password included, at the address Superset reaches.
	URI string
	// Users are existing Superset users given the tenant's role (elt.yaml superset: users:); when empty, Sync
	// creates one user named Key, with the password UserPassword gives.
	Users []string
}

// Options say what Superset must hold.
type Options struct {
	Tenants []Tenant
	// Gone are the keys of tenants the database records as removed or purged: what Sync made for them is
	// deleted. A tenant's role that is neither in Tenants nor in Gone (another database's tenant, a role made
	// by hand) is left alone, and Warn says so.
	Gone      []string
	Catalog   string             // the PostgreSQL database of the tenants (Superset's catalog)
	Relations []project.Relation // the relations every tenant reads, with comments
	Template  *Template          // the starter dashboard; nil: none
	// UserPassword is the password of a user Sync creates for tenant key.
	UserPassword func(key string) (string, error)
	// DryRun plans and reports, and changes nothing.
	DryRun bool
	// Report is told every change, as it is made (or, with DryRun, would be).
	Report func(Action)
	// Warn is told what Sync leaves alone and why (may be nil).
	Warn func(string)
}

// Action is one change Sync made, or would make.
type Action struct {
	Verb   string // create, update, delete
	Object string // e.g. database "cus_0001 analytics"
	Detail string // what differs, for update
}

func (a Action) String() string {
	if a.Detail != "" {
		return fmt.Sprintf("%s %s (%s)", a.Verb, a.Object, a.Detail)
	}
	return a.Verb + " " + a.Object
}

type syncer struct {
	c    *Client
	o    Options
	acts []Action
}

// Sync makes Superset match o: for every tenant its Database, role, users, datasets and starter dashboard;
// for every tenant elt provisioned before that is not in o.Tenants, nothing left. A second Sync with the
// same o changes nothing. It returns what it changed, in order.
func Sync(ctx context.Context, c *Client, o Options) ([]Action, error) {
	s := &syncer{c: c, o: o}
	keys := slices.Clone(o.Gone)
	for _, t := range o.Tenants {
		keys = append(keys, t.Key)
	}
	if err := checkNames(keys); err != nil {
		return nil, err
	}
	roles, err := s.roles(ctx)
	if err != nil {
		return s.acts, err
	}
	known := map[string]bool{}
	for _, t := range o.Tenants {
		known[RoleName(t.Key)] = true
		if err := s.tenant(ctx, t, roles); err != nil {
			return s.acts, fmt.Errorf("superset: tenant %s: %w", t.Key, err)
		}
	}
	gone := slices.Clone(o.Gone)
	slices.Sort(gone)
	for _, key := range gone {
		known[RoleName(key)] = true
		if roles[RoleName(key)] == 0 {
			continue // never provisioned, or removed by an earlier sync
		}
		if err := s.remove(ctx, key, roles[RoleName(key)]); err != nil {
			return s.acts, fmt.Errorf("superset: remove tenant %s: %w", key, err)
		}
	}
	var strangers []string
	for name := range roles {
		if strings.HasPrefix(name, RolePrefix) && !known[name] {
			strangers = append(strangers, name)
		}
	}
	slices.Sort(strangers)
	if len(strangers) > 0 && o.Warn != nil {
		o.Warn(fmt.Sprintf("left alone: role(s) %s name no tenant of this database (another database's tenants, or made by hand)",
			strings.Join(strangers, ", ")))
	}
	return s.acts, nil
}

// act records a change and says whether to make it.
func (s *syncer) act(verb, object, detail string) bool {
	a := Action{Verb: verb, Object: object, Detail: detail}
	s.acts = append(s.acts, a)
	if s.o.Report != nil {
		s.o.Report(a)
	}
	return !s.o.DryRun
}

// create makes an object (act says it): POST body to path, unless this is a dry run (id 0).
func (s *syncer) create(ctx context.Context, obj, detail, path string, body any) (int, error) {
	if !s.act("create", obj, detail) {
		return 0, nil
	}
	id, err := s.c.create(ctx, path, body)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", obj, err)
	}
	return id, nil
}

// write changes or deletes an object (act says it): method to path with body, unless this is a dry run.
func (s *syncer) write(ctx context.Context, verb, obj, detail, method, path string, body any) error {
	if !s.act(verb, obj, detail) {
		return nil
	}
	if err := s.c.do(ctx, method, path, nil, body, nil); err != nil {
		return fmt.Errorf("%s %s: %w", verb, obj, err)
	}
	return nil
}

type named struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

func (s *syncer) roles(ctx context.Context) (map[string]int, error) {
	rs, err := list[named](ctx, s.c, "/api/v1/security/roles/", nil)
	if err != nil {
		return nil, fmt.Errorf("superset roles: %w", err)
	}
	m := map[string]int{}
	for _, r := range rs {
		m[r.Name] = r.ID
	}
	return m, nil
}

func (s *syncer) tenant(ctx context.Context, t Tenant, roles map[string]int) error {
	db, err := s.database(ctx, t)
	if err != nil {
		return err
	}
	role, err := s.role(ctx, t, db, roles)
	if err != nil {
		return err
	}
	if err := s.users(ctx, t, role, roles); err != nil {
		return err
	}
	datasets, err := s.datasets(ctx, t, db)
	if err != nil {
		return err
	}
	if s.o.Template != nil {
		return s.dashboard(ctx, t, datasets)
	}
	return nil
}

// maskedURI is uri with its password as Superset shows it.
func maskedURI(uri string) string {
	return regexp.MustCompile(`(://[^:/@]+:)[^@]*@`).ReplaceAllString(uri, "${1}XXXXXXXXXX@")
}

type database struct {
	ID           int    `json:"id"`
	Name         string `json:"database_name"`
	URI          string `json:"sqlalchemy_uri"`
	ExposeSQLLab bool   `json:"expose_in_sqllab"`
	AllowDML     bool   `json:"allow_dml"`
	AllowCTAS    bool   `json:"allow_ctas"`
	AllowCVAS    bool   `json:"allow_cvas"`
	AllowUpload  bool   `json:"allow_file_upload"`
	AllowAsync   bool   `json:"allow_run_async"`
	Impersonate  bool   `json:"impersonate_user"`
	CacheTimeout *int   `json:"cache_timeout"`
	Managed      bool   `json:"is_managed_externally"`
}

// chartCacheTimeout is the Database's chart cache timeout: the marts change once per elt refresh.
const chartCacheTimeout = 3600

func (s *syncer) findDatabase(ctx context.Context, name string) (int, error) {
	d, err := find(ctx, s.c, "/api/v1/database/", "database_name", name, func(d database) string { return d.Name })
	if err != nil || d == nil {
		return 0, wrap("superset databases", err)
	}
	return d.ID, nil
}

// wrap is err said with what was being read, or nil.
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// database makes the tenant's Database: its login's URI, SQL Lab on, DML and uploads off. It returns its
// id (0 in a dry run that would create it).
func (s *syncer) database(ctx context.Context, t Tenant) (int, error) {
	name := DatabaseName(t.Key)
	want := map[string]any{
		"database_name": name, "sqlalchemy_uri": t.URI, "expose_in_sqllab": true, "allow_dml": false,
		"allow_ctas": false, "allow_cvas": false, "allow_file_upload": false, "impersonate_user": false,
		"allow_run_async": false, "cache_timeout": chartCacheTimeout, "is_managed_externally": true,
	}
	obj := fmt.Sprintf("database %q", name)
	id, err := s.findDatabase(ctx, name)
	if err != nil {
		return 0, err
	}
	if id == 0 {
		return s.create(ctx, obj, "", "/api/v1/database/", want)
	}
	d, err := show[database](ctx, s.c, "/api/v1/database/"+strconv.Itoa(id)+"/connection")
	if err != nil {
		return 0, fmt.Errorf("%s: %w", obj, err)
	}
	var diff []string
	if d.URI != maskedURI(t.URI) {
		diff = append(diff, "URI "+d.URI+" -> "+maskedURI(t.URI))
	}
	if !d.ExposeSQLLab || d.AllowDML || d.AllowCTAS || d.AllowCVAS || d.AllowUpload || d.AllowAsync || d.Impersonate || !d.Managed ||
		d.CacheTimeout == nil || *d.CacheTimeout != chartCacheTimeout {
		diff = append(diff, "settings")
	}
	if len(diff) == 0 {
		// Superset tests its stored password when it is given the masked URI: a rotated password fails.
		err := s.c.do(ctx, http.MethodPost, "/api/v1/database/test_connection/", nil,
			map[string]any{"database_name": name, "sqlalchemy_uri": d.URI}, nil)
		var ae *APIError
		switch {
		case err == nil:
		case errors.As(err, &ae) && (ae.Type == "CONNECTION_INVALID_PASSWORD_ERROR" || ae.Type == "CONNECTION_ACCESS_DENIED_ERROR"):
			diff = append(diff, "password")
		default:
			return 0, fmt.Errorf("Superset cannot connect to PostgreSQL as the tenant with Database %q (%s): %w (is PostgreSQL reachable from Superset at that address?)",
				name, maskedURI(t.URI), err)
		}
	}
	if len(diff) > 0 {
		if err := s.write(ctx, "update", obj, strings.Join(diff, ", "), http.MethodPut, "/api/v1/database/"+strconv.Itoa(id), want); err != nil {
			return 0, err
		}
	}
	return id, nil
}

// schemaPerm is the view menu of schema access to the tenant's schema (6.1 puts the catalog in it).
func (s *syncer) schemaPerm(t Tenant) string {
	return fmt.Sprintf("[%s].[%s].[%s]", DatabaseName(t.Key), s.o.Catalog, t.Schema)
}

type permView struct {
	ID         int `json:"id"`
	Permission struct {
		Name string `json:"name"`
	} `json:"permission"`
	ViewMenu struct {
		Name string `json:"name"`
	} `json:"view_menu"`
}

// permissionView finds (or, unless this is a dry run, creates) the id of permission on view menu.
func (s *syncer) permissionView(ctx context.Context, permission, view string) (int, error) {
	found, err := find(ctx, s.c, "/api/v1/security/resources/", "name", view, func(n named) string { return n.Name })
	if err != nil {
		return 0, fmt.Errorf("superset resources: %w", err)
	}
	vm := 0
	if found != nil {
		vm = found.ID
	}
	if vm != 0 {
		pvs, err := list[permView](ctx, s.c, "/api/v1/security/permissions-resources/", Q().Filter("view_menu", "rel_o_m", vm))
		if err != nil {
			return 0, fmt.Errorf("superset permissions of %s: %w", view, err)
		}
		for _, pv := range pvs {
			if pv.Permission.Name == permission {
				return pv.ID, nil
			}
		}
	}
	if s.o.DryRun {
		return 0, nil // Superset creates it with the Database, or Sync would below
	}
	if vm == 0 {
		if vm, err = s.c.create(ctx, "/api/v1/security/resources/", map[string]any{"name": view}); err != nil {
			return 0, fmt.Errorf("create resource %s: %w", view, err)
		}
	}
	perms, err := list[named](ctx, s.c, "/api/v1/security/permissions/", Q().Filter("name", "eq", permission))
	if err != nil {
		return 0, fmt.Errorf("superset permission %s: %w", permission, err)
	}
	if len(perms) == 0 {
		return 0, fmt.Errorf("superset has no permission %s (run superset init)", permission)
	}
	id, err := s.c.create(ctx, "/api/v1/security/permissions-resources/", map[string]any{"permission_id": perms[0].ID, "view_menu_id": vm})
	if err != nil {
		return 0, fmt.Errorf("create permission %s on %s: %w", permission, view, err)
	}
	return id, nil
}

// role makes the tenant's role hold exactly schema access to the tenant's schema of its Database.
func (s *syncer) role(ctx context.Context, t Tenant, db int, roles map[string]int) (int, error) {
	name := RoleName(t.Key)
	obj := fmt.Sprintf("role %q", name)
	id := roles[name]
	if id == 0 {
		var err error
		if id, err = s.create(ctx, obj, "", "/api/v1/security/roles/", map[string]any{"name": name}); err != nil {
			return 0, err
		}
		roles[name] = id
	}
	perms := "permissions: schema_access on " + s.schemaPerm(t)
	if db == 0 && s.o.DryRun {
		s.act("update", obj, perms)
		return id, nil
	}
	pv, err := s.permissionView(ctx, "schema_access", s.schemaPerm(t))
	if err != nil {
		return 0, err
	}
	var cur []int
	if id != 0 {
		ps, err := show[[]named](ctx, s.c, fmt.Sprintf("/api/v1/security/roles/%d/permissions/", id))
		if err != nil {
			return 0, fmt.Errorf("permissions of %s: %w", obj, err)
		}
		for _, p := range ps {
			cur = append(cur, p.ID)
		}
	}
	if !slices.Equal(cur, []int{pv}) {
		err := s.write(ctx, "update", obj, perms, http.MethodPost, fmt.Sprintf("/api/v1/security/roles/%d/permissions", id),
			map[string]any{"permission_view_menu_ids": []int{pv}})
		if err != nil {
			return 0, err
		}
	}
	return id, nil
}

type user struct {
	ID       int    `json:"id"`
	Username string `json:"username"`
	Email    string `json:"email"`
	Roles    []struct {
		ID   int    `json:"id"`
		Name string `json:"name"`
	} `json:"roles"`
}

func (u user) roleIDs() []int {
	var ids []int
	for _, r := range u.Roles {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	return ids
}

func (s *syncer) findUser(ctx context.Context, username string) (*user, error) {
	u, err := find(ctx, s.c, "/api/v1/security/users/", "username", username, func(u user) string { return u.Username })
	return u, wrap("superset users", err)
}

// users gives the tenant's users its role and the base roles, creating the one named like the tenant when
// the project maps none, and takes the role from users that should no longer have it.
func (s *syncer) users(ctx context.Context, t Tenant, role int, roles map[string]int) error {
	names, create := t.Users, false
	if len(names) == 0 {
		names, create = []string{t.Key}, true
	}
	want := []int{role}
	for _, b := range baseRoles {
		id, ok := roles[b]
		if !ok {
			return fmt.Errorf("superset has no role %s (run superset init)", b)
		}
		want = append(want, id)
	}
	for _, name := range names {
		u, err := s.findUser(ctx, name)
		if err != nil {
			return err
		}
		switch {
		case u == nil && create:
			if !s.act("create", fmt.Sprintf("user %q", name), "roles "+RoleName(t.Key)+", "+strings.Join(baseRoles, ", ")) {
				continue
			}
			pw, err := s.o.UserPassword(t.Key)
			if err != nil {
				return err
			}
			body := map[string]any{"username": name, "first_name": t.Key, "last_name": "analyst",
				"email": createdEmail(t.Key), "active": true, "password": pw, "roles": want}
			if err := s.c.do(ctx, http.MethodPost, "/api/v1/security/users/", nil, body, nil); err != nil {
				return fmt.Errorf("create user %q: %w", name, err)
			}
		case u == nil:
			return fmt.Errorf("user %q (elt.yaml superset: users: %s) does not exist in Superset: create it, or let its first login create it, then sync again", name, t.Key)
		case create && u.Email != createdEmail(t.Key):
			return fmt.Errorf("Superset user %q exists and was not created by elt sync (its email is not %s): list it under superset: users: %s in elt.yaml to give it the tenant's roles, or rename it",
				name, createdEmail(t.Key), t.Key)
		default:
			have := u.roleIDs()
			merged := slices.Clone(have)
			for _, id := range want {
				if id != 0 && !slices.Contains(merged, id) {
					merged = append(merged, id)
				}
			}
			slices.Sort(merged)
			if !slices.Equal(have, merged) {
				err := s.write(ctx, "update", fmt.Sprintf("user %q", name), "roles", http.MethodPut, "/api/v1/security/users/"+strconv.Itoa(u.ID), map[string]any{"roles": merged})
				if err != nil {
					return err
				}
			}
		}
	}
	if role == 0 {
		return nil
	}
	// Users holding the role that are no longer the tenant's lose it.
	holders, err := list[user](ctx, s.c, "/api/v1/security/users/", Q().Filter("roles", "rel_m_m", role))
	if err != nil {
		return fmt.Errorf("superset users of role %s: %w", RoleName(t.Key), err)
	}
	for _, u := range holders {
		if slices.Contains(names, u.Username) {
			continue
		}
		rest := slices.DeleteFunc(u.roleIDs(), func(id int) bool { return id == role })
		err := s.write(ctx, "update", fmt.Sprintf("user %q", u.Username), "remove role "+RoleName(t.Key),
			http.MethodPut, "/api/v1/security/users/"+strconv.Itoa(u.ID), map[string]any{"roles": rest})
		if err != nil {
			return err
		}
	}
	return nil
}

type dataset struct {
	ID          int     `json:"id"`
	TableName   string  `json:"table_name"`
	Schema      string  `json:"schema"`
	Description *string `json:"description"`
	Columns     []struct {
		Name        string  `json:"column_name"`
		Description *string `json:"description"`
	} `json:"columns"`
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// datasets makes one dataset per published relation in the tenant's schema, with the relation's comment as
// its description and its columns' comments, and removes the Database's other datasets. It returns the
// datasets' ids by relation.
func (s *syncer) datasets(ctx context.Context, t Tenant, db int) (map[string]int, error) {
	ids := map[string]int{}
	cur, err := s.databaseDatasets(ctx, db)
	if err != nil {
		return nil, err
	}
	byName := map[string]dataset{}
	for _, d := range cur {
		if d.Schema == t.Schema {
			byName[d.TableName] = d
		}
	}
	for _, r := range s.o.Relations {
		obj := fmt.Sprintf("dataset %s of %q", r.Name, DatabaseName(t.Key))
		d, ok := byName[r.Name]
		delete(byName, r.Name)
		id := d.ID
		if !ok {
			body := map[string]any{"database": db, "catalog": s.o.Catalog, "schema": t.Schema, "table_name": r.Name}
			if id, err = s.create(ctx, obj, "", "/api/v1/dataset/", body); err != nil || id == 0 {
				if err != nil {
					return nil, err
				}
				continue // a dry run
			}
		}
		ids[r.Name] = id
		full, err := show[dataset](ctx, s.c, "/api/v1/dataset/"+strconv.Itoa(id))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", obj, err)
		}
		if deref(full.Description) != r.Comment && (!ok || s.act("update", obj, "description")) {
			body := map[string]any{"description": r.Comment, "is_managed_externally": true}
			if err := s.c.do(ctx, http.MethodPut, "/api/v1/dataset/"+strconv.Itoa(id), nil, body, nil); err != nil {
				return nil, fmt.Errorf("update %s: %w", obj, err)
			}
		}
		have := map[string]string{}
		for _, c := range full.Columns {
			have[c.Name] = deref(c.Description)
		}
		stale := len(have) != len(r.Columns)
		for _, c := range r.Columns {
			if d, ok := have[c.Name]; !ok || d != c.Comment {
				stale = true
			}
		}
		// Refreshing a dataset reads its columns and their comments from PostgreSQL again.
		if stale {
			if err := s.write(ctx, "update", obj, "columns", http.MethodPut, "/api/v1/dataset/"+strconv.Itoa(id)+"/refresh", nil); err != nil {
				return nil, err
			}
		}
	}
	for _, d := range cur {
		if _, extra := byName[d.TableName]; extra || d.Schema != t.Schema {
			if err := s.deleteDataset(ctx, d, DatabaseName(t.Key)); err != nil {
				return nil, err
			}
		}
	}
	return ids, nil
}

func (s *syncer) deleteDataset(ctx context.Context, d dataset, db string) error {
	return s.write(ctx, "delete", fmt.Sprintf("dataset %s.%s of %q", d.Schema, d.TableName, db), "",
		http.MethodDelete, "/api/v1/dataset/"+strconv.Itoa(d.ID), nil)
}

// databaseDatasets are the datasets of Database db (none when db is 0: one a dry run would create).
func (s *syncer) databaseDatasets(ctx context.Context, db int) ([]dataset, error) {
	if db == 0 {
		return nil, nil
	}
	ds, err := list[dataset](ctx, s.c, "/api/v1/dataset/", Q().Filter("database", "rel_o_m", db))
	return ds, wrap("superset datasets", err)
}

type chart struct {
	ID           int    `json:"id"`
	Name         string `json:"slice_name"`
	VizType      string `json:"viz_type"`
	Params       string `json:"params"`
	QueryContext string `json:"query_context"`
	Datasource   int    `json:"datasource_id"`
}

type dashboard struct {
	ID        int    `json:"id"`
	Title     string `json:"dashboard_title"`
	Slug      string `json:"slug"`
	Position  string `json:"position_json"`
	Published bool   `json:"published"`
}

func (s *syncer) findDashboard(ctx context.Context, slug string) (*dashboard, error) {
	d, err := find(ctx, s.c, "/api/v1/dashboard/", "slug", slug, func(d dashboard) string { return d.Slug })
	if err != nil || d == nil {
		return nil, wrap("superset dashboards", err)
	}
	full, err := show[dashboard](ctx, s.c, "/api/v1/dashboard/"+strconv.Itoa(d.ID))
	if err != nil {
		return nil, fmt.Errorf("dashboard %s: %w", slug, err)
	}
	return &full, nil
}

func (s *syncer) dashboardCharts(ctx context.Context, id int) ([]chart, error) {
	cs, err := list[chart](ctx, s.c, "/api/v1/chart/", Q().Filter("dashboards", "rel_m_m", id))
	if err != nil {
		return nil, fmt.Errorf("superset charts of dashboard %d: %w", id, err)
	}
	for i, c := range cs {
		// The list leaves out the query context: each chart is read whole.
		full, err := show[chart](ctx, s.c, "/api/v1/chart/"+strconv.Itoa(c.ID))
		if err != nil {
			return nil, fmt.Errorf("chart %d: %w", c.ID, err)
		}
		full.ID = c.ID
		if full.Datasource == 0 {
			full.Datasource = c.Datasource
		}
		cs[i] = full
	}
	return cs, nil
}

// dashboard makes the tenant's starter dashboard from the template: its charts over the tenant's datasets,
// laid out in order; charts not in the template are removed.
func (s *syncer) dashboard(ctx context.Context, t Tenant, datasets map[string]int) error {
	tpl := s.o.Template
	slug := Slug(t.Key)
	title := strings.ReplaceAll(tpl.Title, "{customer}", t.Key)
	obj := fmt.Sprintf("dashboard %s", slug)
	d, err := s.findDashboard(ctx, slug)
	if err != nil {
		return err
	}
	if d == nil {
		body := map[string]any{"dashboard_title": title, "slug": slug, "published": true, "is_managed_externally": true}
		id, err := s.create(ctx, obj, fmt.Sprintf("%q, %d charts", title, len(tpl.Charts)), "/api/v1/dashboard/", body)
		if err != nil || id == 0 {
			return err // id 0: a dry run
		}
		d = &dashboard{ID: id, Title: title, Slug: slug, Published: true}
	}
	cur, err := s.dashboardCharts(ctx, d.ID)
	if err != nil {
		return err
	}
	byName := map[string]chart{}
	for _, c := range cur {
		byName[c.Name] = c
	}
	ids := make([]int, len(tpl.Charts))
	for i := range tpl.Charts {
		c := &tpl.Charts[i]
		ds := datasets[c.Relation]
		params, qc := c.params(ds), c.queryContext(ds)
		want := map[string]any{"slice_name": c.Title, "viz_type": c.VizType(), "datasource_id": ds,
			"datasource_type": "table", "params": params, "query_context": qc,
			"query_context_generation": false, "dashboards": []int{d.ID}, "is_managed_externally": true}
		cobj := fmt.Sprintf("chart %q of %s", c.Title, slug)
		have, ok := byName[c.Title]
		delete(byName, c.Title)
		switch {
		case !ok:
			if ids[i], err = s.create(ctx, cobj, "", "/api/v1/chart/", want); err != nil {
				return err
			}
		default:
			ids[i] = have.ID
			if have.VizType != c.VizType() || have.Datasource != ds || !sameJSON(have.Params, params) || !sameJSON(have.QueryContext, qc) {
				delete(want, "dashboards") // a PUT would take the chart off every other dashboard
				if err := s.write(ctx, "update", cobj, "definition", http.MethodPut, "/api/v1/chart/"+strconv.Itoa(have.ID), want); err != nil {
					return err
				}
			}
		}
	}
	for _, c := range cur {
		if _, extra := byName[c.Name]; extra {
			if err := s.deleteChart(ctx, c, slug, "not in the template"); err != nil {
				return err
			}
		}
	}
	pos := tpl.position(title, ids)
	if d.Title != title || !d.Published || !sameJSON(d.Position, pos) {
		body := map[string]any{"dashboard_title": title, "published": true, "position_json": pos, "is_managed_externally": true}
		return s.write(ctx, "update", obj, "title and layout", http.MethodPut, "/api/v1/dashboard/"+strconv.Itoa(d.ID), body)
	}
	return nil
}

func (s *syncer) deleteChart(ctx context.Context, c chart, slug, why string) error {
	return s.write(ctx, "delete", fmt.Sprintf("chart %q of %s", c.Name, slug), why, http.MethodDelete, "/api/v1/chart/"+strconv.Itoa(c.ID), nil)
}

func sameJSON(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return a == b
	}
	return mustJSON(x) == mustJSON(y)
}

// remove deletes what Sync made for a tenant that is gone: its dashboard and charts, its Database and
// datasets, the user Sync created for it (by its email) and its role.
// Users mapped in the project lose the role with it.
func (s *syncer) remove(ctx context.Context, key string, role int) error {
	slug := Slug(key)
	d, err := s.findDashboard(ctx, slug)
	if err != nil {
		return err
	}
	if d != nil {
		cs, err := s.dashboardCharts(ctx, d.ID)
		if err != nil {
			return err
		}
		for _, c := range cs {
			if err := s.deleteChart(ctx, c, slug, ""); err != nil {
				return err
			}
		}
		if err := s.write(ctx, "delete", "dashboard "+slug, "", http.MethodDelete, "/api/v1/dashboard/"+strconv.Itoa(d.ID), nil); err != nil {
			return err
		}
	}
	name := DatabaseName(key)
	db, err := s.findDatabase(ctx, name)
	if err != nil {
		return err
	}
	if db != 0 {
		ds, err := s.databaseDatasets(ctx, db)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if err := s.deleteDataset(ctx, d, name); err != nil {
				return err
			}
		}
		if err := s.write(ctx, "delete", fmt.Sprintf("database %q", name), "", http.MethodDelete, "/api/v1/database/"+strconv.Itoa(db), nil); err != nil {
			return err
		}
	}
	u, err := s.findUser(ctx, key)
	if err != nil {
		return err
	}
	if u != nil && u.Email == createdEmail(key) {
		if err := s.write(ctx, "delete", fmt.Sprintf("user %q", key), "", http.MethodDelete, "/api/v1/security/users/"+strconv.Itoa(u.ID), nil); err != nil {
			return err
		}
	}
	return s.write(ctx, "delete", fmt.Sprintf("role %q", RoleName(key)), "", http.MethodDelete, "/api/v1/security/roles/"+strconv.Itoa(role), nil)
}
