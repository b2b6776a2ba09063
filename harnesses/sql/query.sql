-- The target query (one SELECT statement). The question it must answer, exactly:
-- for every customer region, the number of distinct customers with a shipped order placed in
-- March 2024 and those orders' revenue in cents (quantity * unit price), one row per region.
-- Column names and row order are free; the rows must equal the reference result.
SELECT c.region,
       COUNT(DISTINCT o.customer_id) AS customers,
       SUM(o.quantity * p.price_cents) AS revenue_cents
FROM orders AS o
JOIN customers AS c ON c.id = o.customer_id
JOIN products AS p ON p.id = o.product_id
WHERE o.order_date BETWEEN '2024-03-01' AND '2024-03-31'
  AND o.status = 'shipped'
GROUP BY c.region
