# cmake -DINPUT=FILE -DOUTPUT=FILE.c -DNAME=SYMBOL -P EmbedBinary.cmake
# Writes FILE's bytes as a 16-byte-aligned C array SYMBOL and its size
# SYMBOL_size.
file(READ ${INPUT} hex HEX)
string(LENGTH "${hex}" digits)
math(EXPR size "${digits} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" bytes "${bytes}")
file(WRITE ${OUTPUT}
  "/* Generated from ${INPUT} by cmake/EmbedBinary.cmake. */\n"
  "const unsigned char ${NAME}[] __attribute__((aligned(16))) = {\n${bytes}\n};\n"
  "const unsigned long ${NAME}_size = ${size};\n")
