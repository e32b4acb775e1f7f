-- Citus coordinator only: the tables of the project's schemas ($1) that Citus does not distribute yet, in
-- creation order, and whether each has the tenant key column ($2). elt migrate distributes those with the key
-- by it (create_distributed_table: hash-distributed and co-located with each other) and makes the others
-- reference tables (a copy on every node). Partitions follow their parent; materialized views and views stay
-- on the coordinator.
select c.oid::regclass::text,
       exists (select from pg_catalog.pg_attribute as a
               where a.attrelid = c.oid and a.attname = $2 and a.attnum > 0 and not a.attisdropped) as keyed
from pg_catalog.pg_class as c
join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
where n.nspname = any ($1::text[])
  and c.relkind in ('r', 'p')
  and not c.relispartition
  and not exists (select from pg_catalog.pg_dist_partition as d where d.logicalrelid = c.oid)
order by c.oid;
