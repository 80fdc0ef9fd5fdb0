// Package contacts is each web-client user's small address book: the email
// addresses they shared memories with, and the MCP server's user ids those
// addresses resolved to. The server's API answers with ids only; the book
// lets pages show "Shared with bob@example.com" for the people the user
// named by email, and the id for anyone else.
package contacts

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Book is the address book, stored in the web client's database.
type Book struct {
	db  *gorm.DB
	now func() time.Time
}

// New returns a Book over db (migrated by the store package).
func New(db *gorm.DB) *Book { return &Book{db: db, now: time.Now} }

type contact struct {
	UserID    string `gorm:"primaryKey"`
	ContactID string `gorm:"primaryKey"`
	Email     string
	UpdatedAt time.Time
}

func (contact) TableName() string { return "share_contacts" }

// Learn records what a successful share taught: typed is what the user
// entered (emails or user ids), resolved is the memory's shared_with as the
// server returned it. The server returns ids sorted, not in the order they
// were typed, so an email is tied to an id only when exactly one typed
// email and exactly one returned id are not already accounted for; in
// every other case nothing is guessed.
func (b *Book) Learn(ctx context.Context, userID string, typed, resolved []string) error {
	inResult := map[string]bool{}
	for _, id := range resolved {
		inResult[id] = true
	}
	explained := map[string]bool{}
	var emails []string
	for _, t := range typed {
		t = strings.TrimSpace(t)
		if id, err := uuid.Parse(t); err == nil {
			explained[id.String()] = true
		} else if strings.Contains(t, "@") {
			emails = append(emails, strings.ToLower(t))
		}
	}
	slices.Sort(emails)
	emails = slices.Compact(emails)
	if len(emails) == 0 {
		return nil
	}
	var known []contact
	if err := b.db.WithContext(ctx).Where("user_id = ? AND email IN ?", userID, emails).Find(&known).Error; err != nil {
		return err
	}
	accounted := map[string]bool{}
	for _, k := range known {
		if inResult[k.ContactID] {
			accounted[k.Email] = true
			explained[k.ContactID] = true
		}
	}
	var unknownEmails, unexplained []string
	for _, e := range emails {
		if !accounted[e] {
			unknownEmails = append(unknownEmails, e)
		}
	}
	for _, id := range resolved {
		if !explained[id] {
			unexplained = append(unexplained, id)
		}
	}
	if len(unknownEmails) != 1 || len(unexplained) != 1 {
		return nil
	}
	return b.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "user_id"}, {Name: "contact_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"email", "updated_at"}),
	}).Create(&contact{UserID: userID, ContactID: unexplained[0], Email: unknownEmails[0], UpdatedAt: b.now().UTC()}).Error
}

// Emails returns the email the user knows for each of ids that has one.
func (b *Book) Emails(ctx context.Context, userID string, ids []string) (map[string]string, error) {
	out := map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []contact
	if err := b.db.WithContext(ctx).Where("user_id = ? AND contact_id IN ?", userID, ids).Find(&rows).Error; err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.ContactID] = r.Email
	}
	return out, nil
}
