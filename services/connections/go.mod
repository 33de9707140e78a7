module github.com/integrationhub/connections/services/connections

go 1.26.8
