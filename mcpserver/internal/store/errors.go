package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"picard.dev/mcpserver/internal/memory"
)

// unavailable is the one classification of database errors that mean "the
// database cannot be reached or went away" rather than "this statement is
// wrong": refused or dropped connections, a server shutting down or
// starting up, time-outs. Such errors are wrapped with memory.ErrUnavailable,
// which the transports answer with 503 unavailable, so a client retries
// instead of reporting a bug.
func unavailable(err error) error {
	if err == nil || errors.Is(err, memory.ErrUnavailable) || !isUnavailable(err) {
		return err
	}
	return fmt.Errorf("%w: database: %w", memory.ErrUnavailable, err)
}

func isUnavailable(err error) bool {
	var (
		connect *pgconn.ConnectError
		pgErr   *pgconn.PgError
		netErr  net.Error
	)
	switch {
	case errors.Is(err, context.Canceled):
		// The caller gave up; the database may be fine.
		return false
	case errors.As(err, &pgErr):
		return unavailableState(pgErr.Code)
	case errors.As(err, &connect),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, sql.ErrConnDone),
		errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr),
		pgconn.Timeout(err):
		return true
	}
	return false
}

// unavailableState reports whether a Postgres SQLSTATE says the server
// cannot serve now: connection exceptions (class 08), shutdown or start-up
// (57P01–57P03), too many connections (53300).
func unavailableState(code string) bool {
	switch {
	case len(code) == 5 && code[:2] == "08":
		return true
	case code == "57P01", code == "57P02", code == "57P03", code == "53300":
		return true
	}
	return false
}

// classifyPlugin applies unavailable to the error of every GORM statement,
// so store methods need not: errors of transactions (begin, commit), of
// Row().Scan and of iterating rows, which GORM never sees, go through
// unavailable where they occur (DB.tx, Ping, load).
type classifyPlugin struct{}

func (classifyPlugin) Name() string { return "picard:classify-errors" }

func (classifyPlugin) Initialize(db *gorm.DB) error {
	fn := func(tx *gorm.DB) {
		if tx.Error != nil {
			tx.Error = unavailable(tx.Error)
		}
	}
	cb := db.Callback()
	for _, err := range []error{
		cb.Create().After("*").Register("picard:classify", fn),
		cb.Query().After("*").Register("picard:classify", fn),
		cb.Update().After("*").Register("picard:classify", fn),
		cb.Delete().After("*").Register("picard:classify", fn),
		cb.Row().After("*").Register("picard:classify", fn),
		cb.Raw().After("*").Register("picard:classify", fn),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}
