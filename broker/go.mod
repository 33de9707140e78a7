module github.com/integrationhub/connections/broker

go 1.26.8
