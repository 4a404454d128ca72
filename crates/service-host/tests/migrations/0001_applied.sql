-- What the test service's effect writes: one row per event it applied.
CREATE TABLE applied (event_id uuid PRIMARY KEY, event_type text NOT NULL);
