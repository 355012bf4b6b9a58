# q1/grade.sh - read by common/grade.sh: builds the student's client and
# server with the textbook's udp layer and runs q1/grade.c against them.
grade() {
    take client.c server.c
    student_cc client.c
    student_cc server.c
    link client client.o
    link server server.o
    grader_cc common/harness.c q1/grade.c
    link grade grader_harness.o grader_grade.o
    built "client.c, server.c"
    "$tmp/grade" "$tmp/client" "$tmp/server"
}
