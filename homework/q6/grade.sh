# q6/grade.sh - read by common/grade.sh: links the student's comm.c with
# q6/grade.c and the transfer driver, and runs the checks.
grade() {
    take comm.c
    contract comm.h
    student_cc comm.c
    grader_cc common/harness.c common/drive.c q6/grade.c
    link grade grader_harness.o grader_drive.o grader_grade.o comm.o
    built "comm.c"
    "$tmp/grade"
}
