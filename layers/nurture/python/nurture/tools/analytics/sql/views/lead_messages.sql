-- Each message with the lead it belongs to: the lead whose profiles hold its userId or its anonymousId.
-- (A message may name both; DISTINCT keeps it once per lead.)
SELECT DISTINCT p.lead_id, m.message_id, m.type, m.occurred_at, m.event, m.path
FROM messages AS m
JOIN lead_profiles AS p
  ON (p.kind = 'u' AND p.profile_id = m.user_id)
  OR (p.kind = 'a' AND p.profile_id = m.anonymous_id)
