package io.egresstunnel.agent.policy;

import io.egresstunnel.proto.Cidr;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.Arrays;

/** Raw-address helpers shared by {@link AllowRule} and {@link DialPolicy}. */
final class IpBytes {

  private IpBytes() {}

  /** The address bytes, with an IPv4-mapped IPv6 address ({@code ::ffff:a.b.c.d}) cut to IPv4. */
  static byte[] normalized(InetAddress ip) {
    byte[] raw = ip.getAddress();
    return isMapped(raw) ? Arrays.copyOfRange(raw, 12, 16) : raw;
  }

  /** The address itself, or its IPv4 form if it is an IPv4-mapped IPv6 address. */
  static InetAddress normalize(InetAddress ip) {
    if (ip instanceof Inet4Address) {
      return ip;
    }
    byte[] raw = ip.getAddress();
    if (!isMapped(raw)) {
      return ip;
    }
    try {
      return InetAddress.getByAddress(Arrays.copyOfRange(raw, 12, 16));
    } catch (UnknownHostException e) {
      throw new IllegalStateException("4 bytes are always a valid IPv4 address", e);
    }
  }

  /**
   * The CIDR itself, or its IPv4 form if it is an IPv4-mapped IPv6 prefix of length 96 or more
   * ({@code ::ffff:10.0.0.0/104} is {@code 10.0.0.0/8}).
   */
  static Cidr normalize(Cidr cidr) {
    if (cidr.isIpv4() || cidr.prefixLength() < 96) {
      return cidr;
    }
    InetAddress v4 = normalize(cidr.address());
    return v4 == cidr.address() ? cidr : new Cidr(v4, cidr.prefixLength() - 96);
  }

  /** True if the first {@code prefixLength} bits of {@code ip} equal those of {@code net}. */
  static boolean inPrefix(byte[] net, int prefixLength, byte[] ip) {
    if (net.length != ip.length) {
      return false;
    }
    int full = prefixLength >>> 3;
    for (int i = 0; i < full; i++) {
      if (net[i] != ip[i]) {
        return false;
      }
    }
    int rest = prefixLength & 7;
    if (rest == 0) {
      return true;
    }
    int mask = (0xFF00 >>> rest) & 0xFF;
    return (net[full] & mask) == (ip[full] & mask);
  }

  private static boolean isMapped(byte[] raw) {
    if (raw.length != 16 || raw[10] != (byte) 0xFF || raw[11] != (byte) 0xFF) {
      return false;
    }
    for (int i = 0; i < 10; i++) {
      if (raw[i] != 0) {
        return false;
      }
    }
    return true;
  }
}
