package mcp

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"picard.dev/mcpserver/internal/auth"
	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/persona"
	"picard.dev/mcpserver/internal/user"
	"picard.dev/shared"
)

// Errors of the tool layer itself, beside the domain's sentinels.
var (
	// ErrUnauthenticated: the call carries no identity.
	ErrUnauthenticated = errors.New("authentication required")
	// ErrUnknownTool: no tool has this name.
	ErrUnknownTool = errors.New("unknown tool")
	// ErrRateLimited: the caller exceeded its request rate.
	ErrRateLimited = errors.New("too many requests")
)

// ScopeError says the token lacks the scope a tool or resource needs.
type ScopeError struct{ Scope string }

func (e *ScopeError) Error() string {
	return fmt.Sprintf("insufficient_scope: this needs the %s scope, which the access token was not granted", e.Scope)
}

// argsError is a tool argument that does not match the tool's input schema.
type argsError struct{ msg string }

func (e *argsError) Error() string { return e.msg }

// Classify is the one mapping from errors to the contract's error codes and
// HTTP statuses, used for /api responses and MCP tool errors alike. Only
// the messages of errors we raise on purpose are passed on; anything else is
// "internal" with a fixed message, so no detail of a failure leaks.
func Classify(err error) (status int, e shared.APIError) {
	var se *ScopeError
	var ae *argsError
	switch {
	case err == nil:
		return http.StatusOK, shared.APIError{}
	case errors.As(err, &se):
		return http.StatusForbidden, shared.APIError{Code: shared.CodeInsufficientScope, Message: se.Error()}
	case errors.As(err, &ae):
		return http.StatusBadRequest, shared.APIError{Code: shared.CodeInvalidArgument, Message: ae.Error()}
	case errors.Is(err, ErrUnauthenticated), errors.Is(err, auth.ErrNoToken), errors.Is(err, auth.ErrInvalidToken):
		return http.StatusUnauthorized, shared.APIError{Code: shared.CodeUnauthenticated, Message: err.Error()}
	case errors.Is(err, ErrUnknownTool):
		return http.StatusNotFound, shared.APIError{Code: shared.CodeNotFound, Message: err.Error()}
	// Too large before invalid: an ArgumentError is one or the other.
	case errors.Is(err, memory.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, shared.APIError{Code: shared.CodeTooLarge, Message: err.Error()}
	case errors.Is(err, memory.ErrInvalid), errors.Is(err, user.ErrInvalid):
		return http.StatusBadRequest, shared.APIError{Code: shared.CodeInvalidArgument, Message: err.Error()}
	case errors.Is(err, memory.ErrNotFound), errors.Is(err, user.ErrNotFound):
		return http.StatusNotFound, shared.APIError{Code: shared.CodeNotFound, Message: err.Error()}
	case errors.Is(err, memory.ErrForbidden):
		return http.StatusForbidden, shared.APIError{Code: shared.CodePermissionDenied, Message: err.Error()}
	case errors.Is(err, memory.ErrConflict):
		return http.StatusConflict, shared.APIError{Code: shared.CodeConflict, Message: err.Error()}
	case errors.Is(err, ErrRateLimited):
		return http.StatusTooManyRequests, shared.APIError{Code: shared.CodeRateLimited, Message: err.Error()}
	case errors.Is(err, memory.ErrUnavailable):
		// The cause (a database address, a provider's answer) stays in the
		// log; the client learns only that retrying makes sense.
		return http.StatusServiceUnavailable, shared.APIError{Code: shared.CodeUnavailable,
			Message: "a service Picard depends on is unavailable; try again shortly"}
	case errors.Is(err, persona.ErrUnavailable):
		return http.StatusServiceUnavailable, shared.APIError{Code: shared.CodeUnavailable, Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, shared.APIError{Code: shared.CodeUnavailable, Message: "the request took too long and was stopped"}
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, shared.APIError{Code: shared.CodeUnavailable, Message: "the request was cancelled"}
	default:
		return http.StatusInternalServerError, shared.APIError{Code: shared.CodeInternal, Message: "internal error"}
	}
}
