package memory

import (
	"errors"
	"fmt"
)

// Sentinel errors of the domain. Adapters map them to transport errors with
// errors.Is; messages for people come from the wrapped error.
var (
	// ErrNotFound: the memory does not exist or the caller may not see it;
	// the two are deliberately indistinguishable.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: an argument breaks a rule; the error names the argument.
	ErrInvalid = errors.New("invalid argument")
	// ErrTooLarge: an argument or batch exceeds a size limit.
	ErrTooLarge = errors.New("too large")
	// ErrForbidden: the caller may see the memory but not do this to it.
	ErrForbidden = errors.New("permission denied")
	// ErrConflict: the memory changed since it was read; retry.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: something Picard depends on (the database, the
	// embedding provider) cannot be reached now; the same request may
	// succeed shortly. Stores wrap connection failures with it.
	ErrUnavailable = errors.New("temporarily unavailable")
)

// ArgumentError names the argument that broke a rule. It matches ErrInvalid
// or ErrTooLarge with errors.Is, depending on Kind.
type ArgumentError struct {
	Arg  string // e.g. "text", "memories[3].tags[0]"
	Msg  string
	Kind error // ErrInvalid or ErrTooLarge
}

func (e *ArgumentError) Error() string { return e.Arg + ": " + e.Msg }

// Is lets errors.Is(err, ErrInvalid) and errors.Is(err, ErrTooLarge) work.
func (e *ArgumentError) Is(target error) bool { return target == e.Kind }

// Invalidf returns an ErrInvalid naming arg.
func Invalidf(arg, format string, a ...any) error {
	return &ArgumentError{Arg: arg, Msg: fmt.Sprintf(format, a...), Kind: ErrInvalid}
}

// TooLargef returns an ErrTooLarge naming arg.
func TooLargef(arg, format string, a ...any) error {
	return &ArgumentError{Arg: arg, Msg: fmt.Sprintf(format, a...), Kind: ErrTooLarge}
}

// prefixArg puts an element path in front of the argument an error names,
// so an error in a batch says which element was wrong.
func prefixArg(prefix string, err error) error {
	var ae *ArgumentError
	if errors.As(err, &ae) {
		return &ArgumentError{Arg: prefix + "." + ae.Arg, Msg: ae.Msg, Kind: ae.Kind}
	}
	return fmt.Errorf("%s: %w", prefix, err)
}
