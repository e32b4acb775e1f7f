package demoapi

import (
	"math"
	"math/bits"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Customer is an account of the product: a business whose staff are users.
type Customer struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Plan      string    `json:"plan"`
	Country   string    `json:"country"`
	TimeZone  string    `json:"timezone"` // IANA zone of the customer's offices, from Country
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// User is a person who uses the product on behalf of one customer.
type User struct {
	ID         string    `json:"id"`
	CustomerID string    `json:"customer_id"`
	Email      string    `json:"email"`
	Name       string    `json:"name"`
	Role       string    `json:"role"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// Event is one use of a product feature by a user.
type Event struct {
	ID         string     `json:"id"`
	CustomerID string     `json:"customer_id"`
	UserID     string     `json:"user_id"`
	Feature    string     `json:"feature"`
	OccurredAt time.Time  `json:"occurred_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	Properties Properties `json:"properties"`
}

// Properties are the details of an event. Revision is 2 on the updated version of an event and absent on
// the original.
type Properties struct {
	Client     string `json:"client"`
	DurationMS int    `json:"duration_ms"`
	Revision   int    `json:"revision,omitempty"`
}

// Features lists the product features events refer to, most popular first (each customer's mix differs).
var Features = []string{
	"dashboard.view", "search.query", "reports.view", "api.call", "alerts.view", "reports.export",
	"integrations.sync", "comments.add", "alerts.create", "data.import", "settings.update", "users.invite",
}

var (
	featureWeight   = []float64{30, 18, 12, 10, 6, 6, 5, 4, 3, 3, 2, 1}
	featureDuration = []float64{900, 350, 1200, 80, 400, 4500, 9000, 600, 1500, 15000, 700, 500}
	clients         = []string{"web", "ios", "android", "api"}
	clientWeight    = []uint64{60, 15, 12, 13}
	plans           = []string{"enterprise", "pro", "starter", "free"}
	countries       = []string{"IT", "DE", "FR", "US", "GB", "ES", "NL", "SE", "BR", "JP", "IN", "CA", "AU", "PL", "IE"}
	// zones is the IANA zone of each country's customers: among them offsets west and east of UTC, one of
	// half an hour (India) and zones whose daylight saving time starts on other dates (Europe, America,
	// Australia).
	zones = map[string]string{
		"IT": "Europe/Rome", "DE": "Europe/Berlin", "FR": "Europe/Paris", "US": "America/New_York",
		"GB": "Europe/London", "ES": "Europe/Madrid", "NL": "Europe/Amsterdam", "SE": "Europe/Stockholm",
		"BR": "America/Sao_Paulo", "JP": "Asia/Tokyo", "IN": "Asia/Kolkata", "CA": "America/Toronto",
		"AU": "Australia/Sydney", "PL": "Europe/Warsaw", "IE": "Europe/Dublin",
	}
	brands = []string{
		"Acme", "Borealis", "Cobalt", "Dune", "Ember", "Fjord", "Granite", "Harbor", "Indigo", "Juniper",
		"Kestrel", "Lumen", "Meridian", "Nimbus", "Orchid", "Pioneer", "Quartz", "Redwood", "Summit", "Tundra",
		"Umber", "Vertex", "Willow", "Xenon", "Yarrow", "Zephyr", "Alder", "Beacon", "Cinder", "Delta",
		"Echo", "Falcon", "Glacier", "Helix", "Iris", "Jasper", "Kite", "Lagoon", "Magnet", "Nova",
	}
	sectors = []string{
		"Analytics", "Logistics", "Foods", "Health", "Robotics", "Media", "Energy", "Retail", "Labs", "Finance",
		"Travel", "Studio", "Systems", "Bank", "Insurance", "Motors", "Pharma", "Textiles", "Games", "Legal",
	}
	firstNames = []string{
		"Ada", "Marco", "Giulia", "Luca", "Sofia", "Noah", "Emma", "Liam", "Mia", "Hugo", "Lena", "Jonas",
		"Clara", "Mateo", "Lucia", "Ravi", "Priya", "Kenji", "Yuki", "Olivia", "Ethan", "Chloe", "Lars", "Ingrid",
		"Tomasz", "Zofia", "Amara", "Kofi", "Elena", "Pablo", "Ines", "Omar", "Leila", "Grace", "Owen", "Aoife",
		"Mateus", "Ana", "Felix", "Nora",
	}
	lastNames = []string{
		"Rossi", "Bianchi", "Muller", "Schmidt", "Martin", "Bernard", "Smith", "Jones", "Garcia", "Lopez",
		"Jansen", "DeVries", "Andersson", "Nilsson", "Silva", "Santos", "Tanaka", "Sato", "Sharma", "Patel",
		"Brown", "Taylor", "Kowalski", "Nowak", "Murphy", "Kelly", "Dubois", "Moreau", "Ricci", "Romano",
		"Fischer", "Weber", "Costa", "Oliveira", "Suzuki", "Kumar", "Wilson", "Clark", "Lindqvist", "Byrne",
	}
	// Activity by hour of day (UTC) and by weekday (Sunday first).
	hourFactor = []float64{
		0.15, 0.1, 0.08, 0.08, 0.1, 0.2, 0.4, 0.7, 1.0, 1.2, 1.3, 1.3,
		1.1, 1.2, 1.3, 1.3, 1.2, 1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2,
	}
	weekdayFactor = []float64{0.25, 1, 1.05, 1.05, 1, 0.9, 0.35}
)

// dataset is the whole synthetic source: customers and users materialised, events computed on demand.
// It is immutable after build, so a Server serves it from any number of goroutines.
type dataset struct {
	now, start int64 // Unix seconds: the event time span is [start, now)

	customers     []Customer // in id order
	customerJSON  [][]byte
	customerOrder []int32 // customers in (updated_at, id) order

	users        []User // in id order (customer, then number)
	userJSON     [][]byte
	userCustomer []int32   // customer of users[k]
	userOrder    []int32   // users in (updated_at, id) order
	custUsers    [][]int32 // per customer, its users in (updated_at, id) order

	byCreated []int32  // users in created_at order: the users eligible at time t are a prefix
	userCum   []uint64 // prefix sums of activity weights over byCreated, len(users)+1

	hourStart []int64 // index of the first event of each hour of the span, len hours+1
	hourElig  []int32 // users created before each hour starts

	featureCum [][]uint64 // per customer, prefix sums of feature weights

	events, updates int64
	eventKey        uint64
	updateKey       uint64
}

// build materialises the customers, users and calendar of normalised options.
func build(o Options) *dataset {
	d := &dataset{
		now:       o.Now.Unix(),
		events:    o.Events,
		updates:   o.Updates,
		eventKey:  streamKey(o.Seed, streamEvents),
		updateKey: streamKey(o.Seed, streamUpdates),
	}
	d.start = d.now - int64(o.Days)*86400
	sizes, intensity := d.buildCustomers(o)
	d.buildUsers(o, sizes, intensity)
	d.buildFeatures(o)
	d.buildCalendar(o)
	return d
}

// buildCustomers creates the customers and returns each one's number of users and activity intensity.
func (d *dataset) buildCustomers(o Options) (sizes []int, intensity []float64) {
	r := newRNG(o.Seed, streamCustomers)
	n := o.Customers
	// Size ranks are shuffled so the biggest customer is not always cus_0001.
	rank := make([]int, n)
	for i := range rank {
		rank[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := r.intn(int64(i + 1))
		rank[i], rank[j] = rank[j], rank[i]
	}
	brandOrder := make([]int, len(brands))
	for i := range brandOrder {
		brandOrder[i] = i
	}
	for i := len(brandOrder) - 1; i > 0; i-- {
		j := r.intn(int64(i + 1))
		brandOrder[i], brandOrder[j] = brandOrder[j], brandOrder[i]
	}

	share := make([]float64, n)
	var total float64
	for i := range share {
		share[i] = (0.8 + 0.4*r.float()) / math.Pow(float64(rank[i]+1), 1.1)
		total += share[i]
	}
	sizes = distribute(n*o.UsersPerCustomer, share, total)
	intensity = make([]float64, n)
	d.customers = make([]Customer, n)
	for i := range d.customers {
		intensity[i] = 0.5 + 1.5*r.float()
		brand := brands[brandOrder[i%len(brands)]]
		if i >= len(brands) {
			brand += strconv.Itoa(i / len(brands))
		}
		sector := sectors[r.intn(int64(len(sectors)))]
		created := d.start - 30*86400 - r.intn(700*86400)
		plan := plans[3]
		switch q := float64(rank[i]+1) / float64(n); {
		case rank[i] == 0 || q <= 0.1:
			plan = plans[0]
		case q <= 0.4:
			plan = plans[1]
		case q <= 0.75:
			plan = plans[2]
		}
		country := countries[r.intn(int64(len(countries)))]
		d.customers[i] = Customer{
			ID:        "cus_" + string(appendPadded(nil, uint64(i+1), 4)),
			Name:      brand + " " + sector,
			Plan:      plan,
			Country:   country,
			TimeZone:  zones[country],
			CreatedAt: unix(created),
			UpdatedAt: unix(created + r.intn(d.now-created)),
		}
	}
	d.customerJSON = make([][]byte, n)
	for i, c := range d.customers {
		d.customerJSON[i] = c.AppendJSON(nil)
	}
	d.customerOrder = updatedOrder(n, func(i int) (int64, string) {
		return d.customers[i].UpdatedAt.Unix(), d.customers[i].ID
	})
	return sizes, intensity
}

// distribute splits total into parts proportional to share (largest remainder), at least 1 and at most
// MaxUsersPerCustomer each.
func distribute(total int, share []float64, sum float64) []int {
	parts := make([]int, len(share))
	type rem struct {
		i int
		f float64
	}
	rems := make([]rem, len(share))
	left := total
	for i, s := range share {
		exact := float64(total) * s / sum
		parts[i] = int(exact)
		left -= parts[i]
		rems[i] = rem{i, exact - float64(parts[i])}
	}
	sort.SliceStable(rems, func(a, b int) bool { return rems[a].f > rems[b].f })
	for k := 0; k < left; k++ {
		parts[rems[k%len(rems)].i]++
	}
	for i := range parts {
		parts[i] = min(max(parts[i], 1), MaxUsersPerCustomer)
	}
	return parts
}

// buildUsers creates each customer's users: the admin who opened the account first, a third more before
// the event span, the rest joining during it at a growing pace. Activity is heavy-tailed.
func (d *dataset) buildUsers(o Options, sizes []int, intensity []float64) {
	r := newRNG(o.Seed, streamUsers)
	total := 0
	for _, s := range sizes {
		total += s
	}
	d.users = make([]User, 0, total)
	d.userCustomer = make([]int32, 0, total)
	weight := make([]uint64, 0, total)
	span := d.now - d.start
	for c, size := range sizes {
		cust := d.customers[c]
		created0 := cust.CreatedAt.Unix()
		domain := strings.ToLower(strings.Fields(cust.Name)[0]) + ".example"
		created := make([]int64, size)
		for k := range created {
			switch {
			case k == 0:
				created[k] = created0 + 3600 + r.intn(86400)
			case r.float() < 0.35:
				created[k] = created0 + 3600 + r.intn(d.start-created0-3600)
			default:
				created[k] = d.start + int64(float64(span)*math.Sqrt(r.float()))
			}
		}
		sort.Slice(created, func(a, b int) bool { return created[a] < created[b] })
		for k, at := range created {
			first := firstNames[r.intn(int64(len(firstNames)))]
			last := lastNames[r.intn(int64(len(lastNames)))]
			role := "member"
			switch x := r.float(); {
			case k == 0 || x < 0.08:
				role = "admin"
			case x < 0.38:
				role = "viewer"
			}
			num := strconv.Itoa(k + 1)
			id := make([]byte, 0, 14)
			id = append(id, "usr_"...)
			id = append(id, cust.ID[4:]...)
			id = append(id, '_')
			id = appendPadded(id, uint64(k+1), 5)
			d.users = append(d.users, User{
				ID:         string(id),
				CustomerID: cust.ID,
				Email:      strings.ToLower(first) + "." + strings.ToLower(last) + num + "@" + domain,
				Name:       first + " " + last,
				Role:       role,
				CreatedAt:  unix(at),
				UpdatedAt:  unix(at + r.intn(d.now-at)),
			})
			d.userCustomer = append(d.userCustomer, int32(c))
			// Pareto activity: most users are light, a few are power users; some went dormant.
			w := math.Min(math.Pow(1-r.float(), -0.9), 60) * intensity[c]
			if r.float() < 0.12 {
				w *= 0.05
			}
			weight = append(weight, uint64(w*1000)+1)
		}
	}
	d.userJSON = make([][]byte, len(d.users))
	for i, u := range d.users {
		d.userJSON[i] = u.AppendJSON(nil)
	}
	d.userOrder = updatedOrder(len(d.users), func(i int) (int64, string) {
		return d.users[i].UpdatedAt.Unix(), d.users[i].ID
	})
	d.custUsers = make([][]int32, len(d.customers))
	for _, u := range d.userOrder {
		c := d.userCustomer[u]
		d.custUsers[c] = append(d.custUsers[c], u)
	}
	d.byCreated = make([]int32, len(d.users))
	for i := range d.byCreated {
		d.byCreated[i] = int32(i)
	}
	sort.SliceStable(d.byCreated, func(a, b int) bool {
		return d.users[d.byCreated[a]].CreatedAt.Before(d.users[d.byCreated[b]].CreatedAt)
	})
	d.userCum = make([]uint64, len(d.users)+1)
	for i, u := range d.byCreated {
		d.userCum[i+1] = d.userCum[i] + weight[u]
	}
}

// buildFeatures gives each customer its own feature mix around the global popularity.
func (d *dataset) buildFeatures(o Options) {
	r := newRNG(o.Seed, streamFeatures)
	d.featureCum = make([][]uint64, len(d.customers))
	for c := range d.featureCum {
		cum := make([]uint64, len(Features)+1)
		for f, w := range featureWeight {
			cum[f+1] = cum[f] + uint64(w*math.Exp(1.4*r.float()-0.7)*1000) + 1
		}
		d.featureCum[c] = cum
	}
}

// buildCalendar spreads the events over the hours of the span: more on weekdays and office hours, a growing
// trend and some day-to-day noise. Hour h holds events [hourStart[h], hourStart[h+1]).
func (d *dataset) buildCalendar(o Options) {
	r := newRNG(o.Seed, streamCalendar)
	hours := o.Days * 24
	cum := make([]uint64, hours+1)
	noise := 1.0
	for h := range hours {
		t := d.start + int64(h)*3600
		if h%24 == 0 {
			noise = 0.8 + 0.4*r.float()
		}
		wd := (t/86400 + 4) % 7 // 1970-01-01 was a Thursday
		hod := t % 86400 / 3600
		w := weekdayFactor[wd] * hourFactor[hod] * (1 + 0.6*float64(h)/float64(hours)) * noise
		cum[h+1] = cum[h] + uint64(w*1e6) + 1
	}
	d.hourStart = make([]int64, hours+1)
	d.hourElig = make([]int32, hours)
	for h := range d.hourStart {
		hi, lo := bits.Mul64(uint64(d.events), cum[h])
		q, _ := bits.Div64(hi, lo, cum[hours])
		d.hourStart[h] = int64(q)
	}
	k := 0
	for h := range d.hourElig {
		t := d.start + int64(h)*3600
		for k < len(d.byCreated) && d.users[d.byCreated[k]].CreatedAt.Unix() <= t {
			k++
		}
		d.hourElig[h] = int32(k)
	}
}

// updatedOrder returns 0..n-1 sorted by (updated_at, id), the order every endpoint serves.
func updatedOrder(n int, key func(i int) (int64, string)) []int32 {
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	sort.Slice(order, func(a, b int) bool {
		ta, ia := key(int(order[a]))
		tb, ib := key(int(order[b]))
		if ta != tb {
			return ta < tb
		}
		return ia < ib
	})
	return order
}
