package io.egresstunnel.routing.index;

/** An immutable open-addressing map from 128-bit keys (two longs) to non-negative ints. */
final class LongPairIntTable {
  private final long[] his;
  private final long[] los;
  private final int[] values; // value + 1; 0 marks an empty slot
  private final int mask;

  LongPairIntTable(long[] h, long[] l, int[] v, int n) {
    int capacity = Integer.highestOneBit(Math.max(4, n * 2 - 1)) << 1;
    his = new long[capacity];
    los = new long[capacity];
    values = new int[capacity];
    mask = capacity - 1;
    for (int i = 0; i < n; i++) {
      int slot = mix(h[i], l[i]) & mask;
      while (values[slot] != 0 && (his[slot] != h[i] || los[slot] != l[i])) {
        slot = (slot + 1) & mask;
      }
      his[slot] = h[i];
      los[slot] = l[i];
      values[slot] = v[i] + 1;
    }
  }

  int get(long hi, long lo) {
    int slot = mix(hi, lo) & mask;
    while (true) {
      int v = values[slot];
      if (v == 0) {
        return -1;
      }
      if (his[slot] == hi && los[slot] == lo) {
        return v - 1;
      }
      slot = (slot + 1) & mask;
    }
  }

  long bytes() {
    return 20L * values.length;
  }

  private static int mix(long hi, long lo) {
    long x = (hi * 0x9E3779B97F4A7C15L) ^ lo;
    x *= 0xC2B2AE3D27D4EB4FL;
    return (int) (x ^ (x >>> 32));
  }
}
