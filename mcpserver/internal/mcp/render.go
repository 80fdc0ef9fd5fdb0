package mcp

import (
	"fmt"
	"strings"

	"picard.dev/shared"
)

// The text renderings accompany structuredContent for clients (and models)
// that read only content: short, plain, and complete enough to act on —
// ids, permissions and cursors included.

func renderMemory(m shared.Memory) string {
	var b strings.Builder
	writeMemory(&b, m)
	return b.String()
}

func writeMemory(b *strings.Builder, m shared.Memory) {
	fmt.Fprintf(b, "Memory %s (%s", m.ID, m.Permission)
	if len(m.SharedWith) > 0 {
		fmt.Fprintf(b, " with %s", strings.Join(m.SharedWith, ", "))
	}
	if m.Expired {
		b.WriteString(", expired")
	} else if m.ExpirationDate != nil {
		fmt.Fprintf(b, ", expires %s", m.ExpirationDate.Format("2006-01-02T15:04:05Z07:00"))
	}
	fmt.Fprintf(b, ", owner %s, updated %s)", m.OwnerID, m.UpdatedAt.Format("2006-01-02T15:04:05Z07:00"))
	if len(m.Tags) > 0 {
		fmt.Fprintf(b, " tags: %s", strings.Join(m.Tags, ", "))
	}
	b.WriteString("\n")
	b.WriteString(m.Text)
	b.WriteString("\n")
}

func renderMemories(r shared.MemoriesResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Stored %d memories.\n", len(r.Memories))
	for _, m := range r.Memories {
		b.WriteString("\n")
		writeMemory(&b, m)
	}
	return b.String()
}

func renderPage(p shared.MemoryPage) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d memories.\n", len(p.Memories))
	for _, m := range p.Memories {
		b.WriteString("\n")
		writeMemory(&b, m)
	}
	if p.NextCursor != "" {
		fmt.Fprintf(&b, "\nMore: call again with cursor %q.\n", p.NextCursor)
	}
	return b.String()
}

func renderScored(r shared.QueryMemoryResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d results, best first.\n", len(r.Results))
	for _, s := range r.Results {
		fmt.Fprintf(&b, "\nScore %.3f: ", s.Score)
		writeMemory(&b, s.Memory)
	}
	return b.String()
}

func renderAnswer(a shared.QueryUserResult) string {
	var b strings.Builder
	b.WriteString(a.Answer)
	fmt.Fprintf(&b, "\n\n(model: %s; drawn from %d memories", a.Model, len(a.Memories))
	for i, s := range a.Memories {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(s.Memory.ID)
	}
	b.WriteString(")\n")
	return b.String()
}

func renderDeleted(r shared.DeleteMemoryResult) string {
	return fmt.Sprintf("Deleted memory %s.\n", r.MemoryID)
}

func renderDeletedCount(r shared.DeleteMemoriesResult) string {
	return fmt.Sprintf("Deleted %d memories.\n", r.Deleted)
}

func renderPersonas(p shared.PersonaPage) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d personas.\n", len(p.Personas))
	for _, x := range p.Personas {
		fmt.Fprintf(&b, "- %s (user %s): %d public memories\n", x.Name, x.UserID, x.PublicMemories)
	}
	if p.NextCursor != "" {
		fmt.Fprintf(&b, "More: call again with cursor %q.\n", p.NextCursor)
	}
	return b.String()
}

func renderStats(s shared.AdminStatsResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d memories (%d private, %d public, %d shared; %d expired) owned by %d users.\n",
		s.Memories, s.ByPermission[shared.PermissionPrivate], s.ByPermission[shared.PermissionPublic],
		s.ByPermission[shared.PermissionShared], s.Expired, s.Owners)
	fmt.Fprintf(&b, "Activity since %s:\n", s.ActivitySince.Format("2006-01-02T15:04:05Z07:00"))
	for _, k := range sortedKeys(s.ActivityCounts) {
		fmt.Fprintf(&b, "- %s: %d\n", k, s.ActivityCounts[k])
	}
	return b.String()
}

func writeUser(b *strings.Builder, u shared.AdminUser) {
	fmt.Fprintf(b, "- %s <%s> (user %s", u.Name, u.Email, u.UserID)
	if u.Admin {
		b.WriteString(", admin")
	}
	if u.Disabled {
		b.WriteString(", disabled")
	}
	b.WriteString(")\n")
}

func renderUsers(p shared.AdminUserPage) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d accounts.\n", len(p.Users))
	for _, u := range p.Users {
		writeUser(&b, u)
	}
	if p.NextCursor != "" {
		fmt.Fprintf(&b, "More: call again with cursor %q.\n", p.NextCursor)
	}
	return b.String()
}

func renderSetDisabled(r shared.AdminSetUserDisabledResult) string {
	var b strings.Builder
	state := "enabled"
	if r.User.Disabled {
		state = "disabled"
	}
	fmt.Fprintf(&b, "Account %s is %s; %d tokens revoked.\n", r.User.UserID, state, r.RevokedTokens)
	writeUser(&b, r.User)
	return b.String()
}
