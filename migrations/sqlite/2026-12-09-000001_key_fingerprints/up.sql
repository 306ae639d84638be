-- The fingerprint of each key in the keys' folder (a study's pseudonymisation key, the dossier
-- signing key), recorded by the first process that uses it: a node whose folder holds another
-- key, or none (a host that does not mount the installation's shared keys), refuses to work
-- instead of giving subjects second pseudonyms or signing with a key nobody can check.
CREATE TABLE key_fingerprints (
    name TEXT PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL,
    recorded_at TIMESTAMP NOT NULL
);
