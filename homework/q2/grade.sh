# q2/grade.sh - read by common/grade.sh: builds the student's library and
# the programs on it, and runs q2/grade.c, which links the library too.
grade() {
    take comm.c client.c server.c
    contract comm.h
    student_cc comm.c
    student_cc client.c
    student_cc server.c
    link client client.o comm.o
    link server server.o comm.o
    grader_cc common/harness.c q2/grade.c
    link grade grader_harness.o grader_grade.o comm.o
    built "comm.c, client.c, server.c"
    "$tmp/grade" "$tmp/client" "$tmp/server" "$tmp/client.o" "$tmp/server.o"
}
