module picard.dev/shared

go 1.26.8
