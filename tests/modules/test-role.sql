-- The superuser role the module tests connect as (make test-postgres); its password is generated.
SELECT format('CREATE ROLE %I LOGIN SUPERUSER', :'user') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'user', :'password') \gexec
