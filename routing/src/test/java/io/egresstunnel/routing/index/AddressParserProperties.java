package io.egresstunnel.routing.index;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.util.NetUtil;
import java.net.InetAddress;
import java.nio.ByteBuffer;
import java.util.Locale;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;

/** The allocation-free parser agrees with Netty's parser on every form of every address. */
class AddressParserProperties {
  private final AddressParser parser = new AddressParser();

  @Property(tries = 20_000)
  void ipv4InDottedForm(@ForAll int address) throws Exception {
    byte[] raw = ByteBuffer.allocate(4).putInt(address).array();
    String text = InetAddress.getByAddress(raw).getHostAddress();
    assertThat(parser.parse(text)).isEqualTo(AddressParser.V4);
    assertThat(parser.v4).isEqualTo(address);
  }

  @Property(tries = 20_000)
  void ipv6InFullCompressedAndUpperCaseForms(@ForAll long hi, @ForAll long lo) throws Exception {
    byte[] raw = ByteBuffer.allocate(16).putLong(hi).putLong(lo).array();
    InetAddress a = InetAddress.getByAddress(raw);
    boolean mapped = hi == 0 && (lo >>> 32) == 0xFFFFL;
    for (String text :
        new String[] {
          NetUtil.toAddressString(a), // compressed (or dotted when mapped)
          NetUtil.toAddressString(a, true), // IPv4-mapped forced to IPv6 text
          fullForm(raw),
          fullForm(raw).toUpperCase(Locale.ROOT)
        }) {
      int kind = parser.parse(text);
      if (mapped) {
        assertThat(kind).as(text).isEqualTo(AddressParser.V4);
        assertThat(parser.v4).as(text).isEqualTo((int) lo);
      } else if (kind == AddressParser.V6) {
        assertThat(parser.hi).as(text).isEqualTo(hi);
        assertThat(parser.lo).as(text).isEqualTo(lo);
      } else {
        // NetUtil.toAddressString prints a v4 address for a non-IPv6 result only when mapped.
        assertThat(NetUtil.createByteArrayFromIpAddressString(text)).as(text).hasSize(4);
      }
    }
  }

  @Property(tries = 20_000)
  void sparseIpv6CompressesAndParses(@ForAll short a, @ForAll short b, @ForAll byte where) {
    long hi = ((long) (a & 0xFFFF)) << (16 * Math.floorMod(where, 4));
    long lo = ((long) (b & 0xFFFF)) << (16 * Math.floorMod(where >> 2, 4));
    ipv6Agrees(hi, lo | 1); // never all-zero low half: avoids the mapped/compat forms
  }

  private void ipv6Agrees(long hi, long lo) {
    try {
      byte[] raw = ByteBuffer.allocate(16).putLong(hi).putLong(lo).array();
      String text = NetUtil.toAddressString(InetAddress.getByAddress(raw));
      assertThat(parser.parse(text)).as(text).isIn(AddressParser.V6, AddressParser.V4);
      if (parser.parse(text) == AddressParser.V6) {
        assertThat(parser.hi).isEqualTo(hi);
        assertThat(parser.lo).isEqualTo(lo);
      }
    } catch (java.net.UnknownHostException e) {
      throw new AssertionError(e);
    }
  }

  @Example
  void namesAndMalformedLiteralsAreNames() {
    for (String s :
        new String[] {
          "",
          "node-a",
          "node-a.example.com",
          "10.0.0",
          "10.0.0.0.1",
          "256.0.0.1",
          "1..2.3",
          "10.0.0.1.",
          ".10.0.0.1",
          "1.2.3.4a",
          "1234.1.1.1",
          ":::",
          "1:2:3:4:5:6:7:8:9",
          "1::2::3",
          "fe80::1%eth0",
          "[::1]",
          "12345::",
          ":1::",
          "1::2:",
          "g::1",
          "::1.2.3",
          "1:2:3:4:5:6:7:1.2.3.4"
        }) {
      assertThat(parser.parse(s)).as("'" + s + "'").isEqualTo(AddressParser.NAME);
    }
  }

  @Example
  void edgeForms() {
    assertThat(parser.parse("::")).isEqualTo(AddressParser.V6);
    assertThat(parser.hi | parser.lo).isZero();
    assertThat(parser.parse("::1")).isEqualTo(AddressParser.V6);
    assertThat(parser.lo).isEqualTo(1);
    assertThat(parser.parse("1::")).isEqualTo(AddressParser.V6);
    assertThat(parser.hi).isEqualTo(1L << 48);
    assertThat(parser.parse("::ffff:10.0.0.1")).isEqualTo(AddressParser.V4);
    assertThat(parser.v4).isEqualTo(0x0A000001);
    assertThat(parser.parse("64:ff9b::192.0.2.33")).isEqualTo(AddressParser.V6);
    assertThat(parser.lo).isEqualTo(0xC0000221L);
    assertThat(parser.parse("0.0.0.0")).isEqualTo(AddressParser.V4);
    assertThat(parser.parse("255.255.255.255")).isEqualTo(AddressParser.V4);
    assertThat(parser.v4).isEqualTo(-1);
  }

  private static String fullForm(byte[] raw) {
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < 16; i += 2) {
      if (i > 0) {
        b.append(':');
      }
      b.append(String.format("%04x", ((raw[i] & 0xFF) << 8) | (raw[i + 1] & 0xFF)));
    }
    return b.toString();
  }
}
