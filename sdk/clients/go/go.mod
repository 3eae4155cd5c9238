module github.com/herald-dev/herald/sdk/clients/go

go 1.22
