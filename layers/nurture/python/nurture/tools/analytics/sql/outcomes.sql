-- One row per lead sales gave a status: when sales first touched it, its label for calibration (its first
-- decisive status: accepted or won 1, rejected or lost 0, none NULL: unlabelled), its latest status and the
-- revenue it was won for.
WITH ranked AS (
  SELECT lead_id, status, occurred_at, amount,
         ROW_NUMBER() OVER (PARTITION BY lead_id ORDER BY occurred_at, status) AS n,
         ROW_NUMBER() OVER (PARTITION BY lead_id ORDER BY occurred_at DESC, status) AS latest
  FROM outcomes
),
decisive AS (
  SELECT lead_id, status,
         ROW_NUMBER() OVER (PARTITION BY lead_id ORDER BY occurred_at, status) AS n
  FROM outcomes
  WHERE status IN ('accepted', 'won', 'rejected', 'lost')
),
won AS (
  SELECT lead_id, SUM(amount) AS amount
  FROM outcomes
  WHERE status = 'won'
  GROUP BY lead_id
)
SELECT f.lead_id,
       f.occurred_at AS first_status_at,
       CASE WHEN d.status IN ('accepted', 'won') THEN 1 WHEN d.status IN ('rejected', 'lost') THEN 0 END AS label,
       l.status AS latest_status,
       w.amount AS won_amount
FROM ranked AS f
JOIN ranked AS l ON l.lead_id = f.lead_id AND l.latest = 1
LEFT JOIN decisive AS d ON d.lead_id = f.lead_id AND d.n = 1
LEFT JOIN won AS w ON w.lead_id = f.lead_id
WHERE f.n = 1
ORDER BY f.lead_id
