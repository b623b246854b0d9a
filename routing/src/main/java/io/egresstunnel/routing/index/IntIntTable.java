package io.egresstunnel.routing.index;

/** An immutable open-addressing map from int keys to non-negative ints; -1 means absent. */
final class IntIntTable {
  private final int[] keys;
  private final int[] values; // value + 1; 0 marks an empty slot
  private final int mask;

  /** Builds from parallel arrays; a later duplicate key overrides an earlier one. */
  IntIntTable(int[] k, int[] v, int n) {
    int capacity = Integer.highestOneBit(Math.max(4, n * 2 - 1)) << 1;
    keys = new int[capacity];
    values = new int[capacity];
    mask = capacity - 1;
    for (int i = 0; i < n; i++) {
      int slot = mix(k[i]) & mask;
      while (values[slot] != 0 && keys[slot] != k[i]) {
        slot = (slot + 1) & mask;
      }
      keys[slot] = k[i];
      values[slot] = v[i] + 1;
    }
  }

  int get(int key) {
    int slot = mix(key) & mask;
    while (true) {
      int v = values[slot];
      if (v == 0) {
        return -1;
      }
      if (keys[slot] == key) {
        return v - 1;
      }
      slot = (slot + 1) & mask;
    }
  }

  long bytes() {
    return 8L * keys.length;
  }

  static int mix(int x) {
    x *= 0x9E3779B9;
    return x ^ (x >>> 16);
  }
}
