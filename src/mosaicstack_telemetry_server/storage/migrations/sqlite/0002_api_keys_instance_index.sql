-- Schema 2: find the keys of one instance (key rotation, admin listings) without a scan.

CREATE INDEX api_keys_instance_id_idx ON api_keys (instance_id, created_at);
