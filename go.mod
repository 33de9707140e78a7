module github.com/integrationhub/connections

go 1.26.8
