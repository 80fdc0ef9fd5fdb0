package web

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v5"

	"picard.dev/webclient/internal/oauthclient"
)

type connectPage struct {
	State  oauthclient.State
	Needed bool   // the user came from a page that needs a connection
	Error  string // why the last attempt failed
}

func (s *server) connectView(c *echo.Context, d connectPage) error {
	st, err := s.OAuth.Status(c.Request().Context(), currentUser(c).ID)
	if err != nil {
		return err
	}
	d.State = st
	c.Set("conn", st)
	status := http.StatusOK
	if d.Error != "" {
		status = http.StatusBadGateway
	}
	return s.render(c, status, "connect.html", d)
}

func (s *server) connectPage(c *echo.Context) error { return s.connectView(c, connectPage{}) }

func (s *server) oauthConnect(c *echo.Context) error {
	sess, _ := c.Get("session").(string)
	u, err := s.OAuth.StartFlow(c.Request().Context(), currentUser(c).ID, sess)
	if errors.Is(err, oauthclient.ErrUnavailable) {
		return s.connectView(c, connectPage{Error: "The memory server is not reachable right now. Please try again in a moment."})
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, u)
}

func (s *server) oauthCallback(c *echo.Context) error {
	sess, _ := c.Get("session").(string)
	err := s.OAuth.Complete(c.Request().Context(), currentUser(c).ID, sess, c.QueryParams())
	switch {
	case err == nil:
		return c.Redirect(http.StatusSeeOther, "/?m=connected")
	case errors.Is(err, oauthclient.ErrDenied):
		return s.connectView(c, connectPage{Error: "You did not grant access, so nothing was connected."})
	case errors.Is(err, oauthclient.ErrInvalidFlow):
		s.Logger.Warn("refused OAuth callback", "error", err)
		return s.connectView(c, connectPage{Error: "This sign-in response was not started from this browser session, or it expired. Please connect again."})
	case errors.Is(err, oauthclient.ErrUnavailable):
		return s.connectView(c, connectPage{Error: "The memory server did not answer while finishing the connection. Please connect again."})
	case errors.Is(err, oauthclient.ErrReconnect):
		return s.connectView(c, connectPage{Error: "The memory server did not accept the sign-in. Please connect again."})
	}
	s.Logger.Error("completing OAuth flow", "error", err)
	return s.connectView(c, connectPage{Error: "The connection could not be completed. Please try again."})
}

func (s *server) oauthDisconnect(c *echo.Context) error {
	err := s.OAuth.Disconnect(c.Request().Context(), currentUser(c).ID)
	if errors.Is(err, oauthclient.ErrUnavailable) {
		return s.connectView(c, connectPage{Error: "The memory server could not be reached to revoke access, so you are still connected. Please try again in a moment."})
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/connect?m=disconnected")
}
