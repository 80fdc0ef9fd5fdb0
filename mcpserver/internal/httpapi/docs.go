package httpapi

import (
	"embed"
	"mime"
	"net/http"
	"path"

	"github.com/labstack/echo/v5"
)

// swaggerUI holds the files of swagger-ui-dist that /docs serves (see
// swaggerui/VERSION); no CDN is involved, so /docs works offline.
//
//go:embed swaggerui
var swaggerUI embed.FS

// docsPage loads Swagger UI from /docs/ and points it at /openapi.json.
// The inline script is the whole configuration; the page has no other
// dependencies.
const docsPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Picard API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
  oauth2RedirectUrl: window.location.origin + "/docs/oauth2-redirect.html"
});
</script>
</body>
</html>
`

func (a *API) serveDocs(c *echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.HTML(http.StatusOK, docsPage)
}

// docsAssets are the files /docs/:file may serve.
var docsAssets = map[string]bool{
	"swagger-ui.css": true, "swagger-ui-bundle.js": true, "favicon-32x32.png": true,
	"oauth2-redirect.html": true, "oauth2-redirect.js": true,
	"LICENSE": true, "NOTICE": true, "swagger-ui-bundle.js.LICENSE.txt": true,
}

func (a *API) serveDocsAsset(c *echo.Context) error {
	name := c.Param("file")
	if !docsAssets[name] {
		return c.JSON(http.StatusNotFound, map[string]any{"error": map[string]string{"code": "not_found", "message": "no such file"}})
	}
	b, err := swaggerUI.ReadFile("swaggerui/" + name)
	if err != nil {
		return err
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "text/plain; charset=utf-8"
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=86400")
	return c.Blob(http.StatusOK, ct, b)
}
