-- 0003_auth: JWKS documents fetched from clients' registered jwks_uri,
-- cached only as long as the client's Cache-Control allows (SPEC A8), shared
-- by every httpd child on every host.
CREATE TABLE bulkfhir.jwks_cache (
    url         text PRIMARY KEY,
    body        jsonb NOT NULL,
    fetched_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
