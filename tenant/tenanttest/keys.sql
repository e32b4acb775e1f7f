array(select customer_id from core.customers order by customer_id)
