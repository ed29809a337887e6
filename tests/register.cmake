# Registration path (issue 16): the device-certificate cache against the
# uncached check.
stk_unit_test(test_devcert)
