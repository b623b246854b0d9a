package io.egresstunnel.proto;

import io.netty.util.NetUtil;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.util.Arrays;

/**
 * An IPv4 or IPv6 prefix such as {@code 10.42.1.0/24} or {@code fd00:10:42::/64}. The host bits
 * must be zero, so each prefix has exactly one form.
 */
public record Cidr(InetAddress address, int prefixLength) {

  public Cidr {
    if (address == null) {
      throw new IllegalArgumentException("CIDR address is missing");
    }
    int bits = address.getAddress().length * 8;
    Limits.check("CIDR prefix length", prefixLength, 0, bits);
    byte[] raw = address.getAddress();
    for (int bit = prefixLength; bit < bits; bit++) {
      if ((raw[bit >>> 3] & (0x80 >>> (bit & 7))) != 0) {
        throw new IllegalArgumentException(
            "CIDR " + NetUtil.toAddressString(address) + "/" + prefixLength + " has host bits set");
      }
    }
  }

  /** Parses {@code ADDRESS/PREFIX} (IP literals only: nothing is resolved). */
  public static Cidr parse(String text) {
    int slash = text.indexOf('/');
    if (slash < 0) {
      throw new IllegalArgumentException("not a CIDR (ADDRESS/PREFIX): " + text);
    }
    InetAddress address = parseAddress(text.substring(0, slash));
    int prefix;
    try {
      prefix = Integer.parseInt(text.substring(slash + 1));
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("not a CIDR prefix length: " + text, e);
    }
    return new Cidr(address, prefix);
  }

  /** Parses an IPv4 or IPv6 literal without any name resolution. */
  public static InetAddress parseAddress(String literal) {
    InetAddress address = NetUtil.createInetAddressFromIpAddressString(literal);
    if (address == null) {
      throw new IllegalArgumentException("not an IP address: " + literal);
    }
    return address;
  }

  /** True for an IPv4 prefix. */
  public boolean isIpv4() {
    return address instanceof Inet4Address;
  }

  /** True if {@code candidate} (same family) lies inside this prefix. */
  public boolean contains(InetAddress candidate) {
    byte[] net = address.getAddress();
    byte[] ip = candidate.getAddress();
    if (net.length != ip.length) {
      return false;
    }
    int full = prefixLength >>> 3;
    if (!Arrays.equals(net, 0, full, ip, 0, full)) {
      return false;
    }
    int rest = prefixLength & 7;
    if (rest == 0) {
      return true;
    }
    int mask = (0xFF00 >>> rest) & 0xFF;
    return (net[full] & mask) == (ip[full] & mask);
  }

  @Override
  public String toString() {
    return NetUtil.toAddressString(address) + "/" + prefixLength;
  }
}
