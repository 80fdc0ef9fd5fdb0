package shared

import "fmt"

// Error codes of /api responses, with the HTTP status each one travels with.
const (
	CodeInvalidArgument   = "invalid_argument"   // 400
	CodeUnauthenticated   = "unauthenticated"    // 401
	CodePermissionDenied  = "permission_denied"  // 403
	CodeInsufficientScope = "insufficient_scope" // 403
	CodeNotFound          = "not_found"          // 404
	CodeConflict          = "conflict"           // 409
	CodeTooLarge          = "too_large"          // 413
	CodeRateLimited       = "rate_limited"       // 429
	CodeInternal          = "internal"           // 500
	CodeUnavailable       = "unavailable"        // 503
)

// APIError is the body of every /api error: {"error": {"code", "message"}}.
type APIError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *APIError) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// ErrorBody wraps an APIError the way /api sends it.
type ErrorBody struct {
	Error APIError `json:"error"`
}
