# site/, signer/ and server/ call one way and never in a circle (site/README.md):
# tests/callgraph.py reads the object files this build already made (nm) and
# names every circle and every call the wrong way. It builds nothing.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
add_test(NAME callgraph COMMAND Python3::Interpreter
  ${CMAKE_CURRENT_SOURCE_DIR}/callgraph.py ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
set_tests_properties(callgraph PROPERTIES LABELS "unit;static")
