package web

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"

	"picard.dev/shared"
	"picard.dev/webclient/internal/transfer"
)

type importPage struct {
	Content string
	Format  string
	Result  *transfer.Result
	Error   string
}

// Formats offered by the import form.
var importFormats = map[string]transfer.Format{"": "", "json": transfer.JSON, "jsonl": transfer.JSONL, "csv": transfer.CSV}

func (s *server) importPage(c *echo.Context) error {
	return s.render(c, http.StatusOK, "import.html", importPage{})
}

// importMemories previews a file (action=preview) or stores it
// (action=import). The file's text travels back in the form, so the
// preview can be corrected and nothing is stored until every row is valid;
// the server then stores the batch all or nothing with submit_memories.
func (s *server) importMemories(c *echo.Context) error {
	d := importPage{Content: c.FormValue("content"), Format: c.FormValue("format")}
	format, ok := importFormats[d.Format]
	if !ok {
		d.Format, format = "", ""
	}
	if fh, err := c.FormFile("file"); err == nil && fh.Size > 0 {
		f, err := fh.Open()
		if err != nil {
			return err
		}
		data, err := io.ReadAll(io.LimitReader(f, transfer.MaxFileBytes+1))
		f.Close()
		if err != nil {
			return err
		}
		d.Content = string(data)
	} else if err != nil && !errors.Is(err, http.ErrMissingFile) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge
		}
		if !errors.Is(err, http.ErrNotMultipart) {
			return err
		}
	}
	if d.Content == "" {
		d.Error = "Choose a file or paste its content."
		return s.render(c, http.StatusUnprocessableEntity, "import.html", d)
	}
	d.Result = transfer.Parse(format, []byte(d.Content))
	if c.FormValue("action") != "import" || !d.Result.OK() {
		status := http.StatusOK
		if !d.Result.OK() {
			status = http.StatusUnprocessableEntity
		}
		return s.render(c, status, "import.html", d)
	}
	stored, err := s.conn(c).SubmitMemories(c.Request().Context(), d.Result.Memories())
	if err != nil {
		if msg, ok := s.formError(c, err); ok {
			d.Error = msg + " Nothing was imported."
			return s.render(c, http.StatusUnprocessableEntity, "import.html", d)
		}
		return err
	}
	return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/memories?m=imported&n=%d", len(stored)))
}

// exportPageSize is the page size used while streaming an export; the
// contract allows up to 500.
const exportPageSize = 500

type memoryWriter interface {
	Write(shared.Memory) error
}

// export shows the export page, or with ?format=json|csv streams every
// memory of the user, expired ones included, page by page. The first page
// is fetched before anything is written so that an unavailable server
// still gets a friendly page; a failure later can only cut the download
// short, which leaves an invalid file rather than a silently partial one.
func (s *server) export(c *echo.Context) error {
	format := c.QueryParam("format")
	if format == "" {
		return s.render(c, http.StatusOK, "export.html", nil)
	}
	if format != "json" && format != "csv" {
		return echo.NewHTTPError(http.StatusBadRequest, "Choose JSON or CSV.")
	}
	ctx := c.Request().Context()
	conn := s.conn(c)
	args := shared.GetMemoriesArgs{IncludeExpired: true, Limit: exportPageSize, Sort: "created_at", Order: "asc"}
	page, err := conn.GetMemories(ctx, args)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("picard-memories-%s.%s", time.Now().UTC().Format("20060102"), format)
	w := c.Response()
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	var (
		mw    memoryWriter
		close func() error
	)
	if format == "json" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		jw, err := transfer.NewJSONWriter(w)
		if err != nil {
			return err
		}
		mw, close = jw, jw.Close
	} else {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		cw, err := transfer.NewCSVWriter(w)
		if err != nil {
			return err
		}
		mw, close = cw, cw.Flush
	}
	for {
		for _, m := range page.Memories {
			if err := mw.Write(m); err != nil {
				return err
			}
		}
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		if page.NextCursor == "" {
			return close()
		}
		args.Cursor = page.NextCursor
		if page, err = conn.GetMemories(ctx, args); err != nil {
			return err
		}
	}
}
