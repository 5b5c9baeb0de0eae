-- Reserved: a placeholder for the schema version another branch takes; the integrator drops
-- it when renumbering the OTLP receiver's migration.
SELECT 1;
