package bpf

// The generated flows_bpfel.go and flows_bpfel.o are committed: building the
// project needs no clang. `make bpf` regenerates them (clang 14, libbpf-dev);
// the output is reproducible.
//go:generate go tool bpf2go -target bpfel -tags linux -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -type event -type flow_key -type flow_value -type peer_key -type peer_value -type policy_key -type policy_value -type port_range -type counter -type verdict -type event_kind -type counter_index -type user_limit -type user_stat flows flows.c
