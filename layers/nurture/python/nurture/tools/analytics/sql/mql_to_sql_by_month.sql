-- MQL-to-SQL by month, from sales outcomes alone: a lead handed to sales (any status) is an MQL in the month sales
-- first gave it a status; it became an SQL if sales accepted it (accepted, opportunity or won) at any time.
-- (The engine's own monthly metric, `nurture report`, counts MQLs when sales is alerted; this one needs only the
-- outcomes, so it also runs on a simulated or imported history.)
WITH per_lead AS (
  SELECT lead_id,
         MIN(occurred_at) AS first_at,
         MAX(CASE WHEN status IN ('accepted', 'opportunity', 'won') THEN 1 ELSE 0 END) AS accepted
  FROM outcomes
  GROUP BY lead_id
),
monthly AS (
  SELECT CAST(EXTRACT(YEAR FROM first_at) AS INTEGER) AS year,
         CAST(EXTRACT(MONTH FROM first_at) AS INTEGER) AS month,
         accepted
  FROM per_lead
)
SELECT year, month, COUNT(*) AS mqls, SUM(accepted) AS sqls,
       ROUND(CAST(SUM(accepted) AS DOUBLE) / COUNT(*), 3) AS mql_to_sql
FROM monthly
GROUP BY year, month
ORDER BY year, month
