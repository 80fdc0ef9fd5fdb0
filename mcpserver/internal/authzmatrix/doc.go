// Package authzmatrix holds only a test: the authorization matrix of
// Picard, every tool and resource against every kind of caller, through the
// real HTTP stack (httpapi, the oauth verifier with tokens minted by the
// real authorization server, and a SQLite store). The test also keeps the
// matrix printed in docs/security.md up to date; see matrix_test.go.
package authzmatrix
