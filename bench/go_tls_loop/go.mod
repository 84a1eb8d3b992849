module oisp-sensor/bench/go_tls_loop

go 1.19
