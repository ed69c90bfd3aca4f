-- Per lead sales gave a status: how many page views under each top-level path (`page /pricing`) and how many of
-- each track event (`track Demo Requested`) it had before its first status: what it did before sales touched it.
WITH first_status AS (
  SELECT lead_id, MIN(occurred_at) AS occurred_at
  FROM outcomes
  GROUP BY lead_id
),
signals AS (
  SELECT lm.lead_id,
         CASE
           WHEN lm.type = 'page' THEN 'page /' || COALESCE(split_part(substr(lm.path, 2), '/', 1), '')
           ELSE 'track ' || lm.event
         END AS signal
  FROM lead_messages AS lm
  JOIN first_status AS f ON f.lead_id = lm.lead_id AND lm.occurred_at < f.occurred_at
  WHERE lm.type IN ('page', 'track')
)
SELECT lead_id, signal, COUNT(*) AS messages
FROM signals
GROUP BY lead_id, signal
ORDER BY lead_id, signal
