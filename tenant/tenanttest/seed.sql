-- The test data of tenanttest.Seed: Customers' data in the default project's core tables (30 days of events
-- ending 2026-11-20, five features). {{scale}} multiplies the events of every customer but the first.
insert into core.customers (customer_id, name, plan, country, created_at, updated_at, staging_id, batch_id)
select 'cus_' || lpad(i::text, 4, '0'), 'Customer ' || i || ' Ltd', (array['free', 'team', 'enterprise'])[i],
       (array['FR', 'DE', 'US'])[i], timestamptz '2025-01-01' + i * interval '1 day', timestamptz '2026-11-20', i, 0
from generate_series(1, 3) as i;

insert into core.users (customer_id, user_id, email, name, role, created_at, updated_at, staging_id, batch_id)
select c.customer_id, c.customer_id || '_u' || u, 'user' || u || '@' || c.customer_id || '.example', 'User ' || u,
       'member', timestamptz '2025-02-01', timestamptz '2026-11-20', u, 0
from (select customer_id, right(customer_id, 1)::int as n from core.customers) as c
cross join lateral generate_series(1, 3 * c.n) as u;

insert into core.events (customer_id, event_id, user_id, feature, occurred_at, updated_at, properties, staging_id, batch_id)
select c.customer_id, c.customer_id || '_e' || e, c.customer_id || '_u' || (1 + e % (3 * c.n)),
       (array['dashboard.view', 'report.export', 'alert.create', 'query.run', 'share.link'])[1 + (e * c.n) % 5],
       timestamptz '2026-11-20 12:00:00+00' - ((e * 7) % 30) * interval '1 day' - (e % 11) * interval '1 hour',
       timestamptz '2026-11-20', jsonb_build_object('n', e), e, 0
from (select customer_id, right(customer_id, 1)::int as n from core.customers) as c
cross join lateral generate_series(1, 40 * c.n * (case when c.n = 1 then 1 else {{scale}} end)) as e;
