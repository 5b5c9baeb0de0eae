-- Reserved for a migration of another branch (merged in parallel); the integrator drops this
-- file and renumbers at merge.
SELECT 1;
