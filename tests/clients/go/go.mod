module oisp-sensor/tests/clients/go

go 1.19
