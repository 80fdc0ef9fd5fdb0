package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/uuid"

	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/persona"
)

// PersonaSettings keeps how each user's persona answers (table
// persona_settings, migration 00003).
type PersonaSettings struct{ db *DB }

var _ persona.SettingsStore = (*PersonaSettings)(nil)

// PersonaSettings returns the persona settings store of db.
func (db *DB) PersonaSettings() *PersonaSettings { return &PersonaSettings{db: db} }

// Get returns the user's settings, or memory.ErrNotFound when they never
// saved any (the persona package then applies its defaults).
func (s *PersonaSettings) Get(ctx context.Context, userID uuid.UUID) (persona.Settings, error) {
	rows, err := s.db.session(ctx).Raw(`SELECT description, answers_others, temperature, max_tokens, updated_at
		FROM persona_settings WHERE user_id = ?`, userID).Rows()
	if err != nil {
		return persona.Settings{}, fmt.Errorf("query persona settings: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return persona.Settings{}, fmt.Errorf("query persona settings: %w", err)
		}
		return persona.Settings{}, memory.ErrNotFound
	}
	var (
		st      persona.Settings
		temp    sql.NullFloat64
		tokens  sql.NullInt64
		updated sqlTime
	)
	if err := rows.Scan(&st.Description, &st.AnswersOthers, &temp, &tokens, &updated); err != nil {
		return persona.Settings{}, fmt.Errorf("scan persona settings: %w", err)
	}
	if temp.Valid {
		st.Temperature = &temp.Float64
	}
	if tokens.Valid {
		n := int(tokens.Int64)
		st.MaxTokens = &n
	}
	st.UpdatedAt = updated.Time
	return st, nil
}

// Put saves the user's settings, replacing earlier ones.
func (s *PersonaSettings) Put(ctx context.Context, userID uuid.UUID, st persona.Settings) error {
	var temp, tokens any
	if st.Temperature != nil {
		temp = *st.Temperature
	}
	if st.MaxTokens != nil {
		tokens = *st.MaxTokens
	}
	at := st.UpdatedAt
	if at.IsZero() {
		at = time.Now()
	}
	err := s.db.session(ctx).Exec(`INSERT INTO persona_settings (user_id, description, answers_others, temperature, max_tokens, updated_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET description = excluded.description, answers_others = excluded.answers_others,
			temperature = excluded.temperature, max_tokens = excluded.max_tokens, updated_at = excluded.updated_at`,
		userID, st.Description, st.AnswersOthers, temp, tokens, s.db.at(at)).Error
	if err != nil {
		return fmt.Errorf("store persona settings: %w", err)
	}
	return nil
}
