module picard.dev/scripts

go 1.26.8

require (
	github.com/modelcontextprotocol/go-sdk v1.8.0 // indirect
	golang.org/x/oauth2 v0.38.0 // indirect
	picard.dev/shared v0.0.0
)

replace picard.dev/shared => ../shared
