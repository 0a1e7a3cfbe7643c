// Flink's side of bench/flink-compare: one local (MiniCluster) Flink job per
// run, in streaming mode over bounded files, as `weir run` runs Weir's side.
//
//   java -cp "pyflink/lib/*:classes" FlinkBench sql FILE.sql PARALLELISM BACKEND
//   java -cp ... FlinkBench udf  DIR  PARALLELISM BACKEND SINK
//   java -cp ... FlinkBench nab  FILE PARALLELISM BACKEND SINK
//
// BACKEND is Flink's state.backend.type (hashmap, Flink's default, or
// rocksdb); SINK is `blackhole` (a DiscardingSink) or `print` (one line per
// output on stdout). `sql` runs the statements of FILE (separated by `;` at
// the end of a line) in order, waiting for the INSERT. `udf` is the
// DataStream pipeline parse -> map -> filter -> keyed count over the bid CSV
// files of DIR; `nab` is the event-time z-score rule of udfs/nab-zscore as a
// KeyedProcessFunction (MapState of readings by timestamp, ValueState of
// Welford statistics, an event-time timer per reading) over FILE, a CSV of
// `series,timestamp,value` rows.

import java.math.BigDecimal;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.FilterFunction;
import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeHint;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.file.src.FileSource;
import org.apache.flink.connector.file.src.reader.TextLineInputFormat;
import org.apache.flink.core.fs.Path;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.util.Collector;

public class FlinkBench {
    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println("usage: FlinkBench sql|udf|nab INPUT PARALLELISM BACKEND [SINK]");
            System.exit(2);
        }
        String mode = args[0];
        Configuration conf = new Configuration();
        conf.setString("parallelism.default", args[2]);
        conf.setString("state.backend.type", args[3]);
        conf.setString("execution.runtime-mode", "STREAMING");
        String sink = args.length > 4 ? args[4] : "blackhole";
        switch (mode) {
            case "sql": runSql(conf, args[1]); break;
            case "udf": runUdf(conf, args[1], sink); break;
            case "nab": runNab(conf, args[1], sink); break;
            default:
                System.err.println("unknown mode " + mode);
                System.exit(2);
        }
    }

    static void runSql(Configuration conf, String file) throws Exception {
        TableEnvironment tenv = TableEnvironment.create(
                EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(conf).build());
        String text = new String(Files.readAllBytes(Paths.get(file)));
        TableResult last = null;
        for (String statement : text.split(";\\s*\n")) {
            if (statement.trim().isEmpty()) {
                continue;
            }
            last = tenv.executeSql(statement);
        }
        if (last != null) {
            last.await();
        }
    }

    /** A bid of the CSV files: auction,bidder,price,dateTime,extra. */
    public static class Bid {
        public long auction;
        public long bidder;
        public long price;
        public long dateTime;
        public String extra;
        public Bid() {}
    }

    /** A bid with its price in euros (q1's currency conversion). */
    public static class EuroBid {
        public long auction;
        public long bidder;
        public BigDecimal price;
        public long dateTime;
        public String extra;
        public EuroBid() {}
    }

    static <T> void sinkTo(DataStream<T> stream, String sink) {
        if (sink.equals("print")) {
            stream.print();
        } else {
            stream.sinkTo(new DiscardingSink<>());
        }
    }

    static void runUdf(Configuration conf, String dir, String sink) throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        FileSource<String> source =
                FileSource.forRecordStreamFormat(new TextLineInputFormat(), new Path(dir)).build();
        DataStream<String> lines = env.fromSource(source, WatermarkStrategy.noWatermarks(), "bids");
        DataStream<Bid> bids = lines.flatMap(new FlatMapFunction<String, Bid>() {
            @Override
            public void flatMap(String line, Collector<Bid> out) {
                if (line.startsWith("auction,")) {
                    return; // the header of each file
                }
                String[] f = line.split(",", 5);
                Bid b = new Bid();
                b.auction = Long.parseLong(f[0]);
                b.bidder = Long.parseLong(f[1]);
                b.price = Long.parseLong(f[2]);
                b.dateTime = Long.parseLong(f[3]);
                b.extra = f[4];
                out.collect(b);
            }
        });
        BigDecimal rate = new BigDecimal("0.908");
        DataStream<EuroBid> euros = bids.map(new MapFunction<Bid, EuroBid>() {
            @Override
            public EuroBid map(Bid b) {
                EuroBid e = new EuroBid();
                e.auction = b.auction;
                e.bidder = b.bidder;
                e.price = rate.multiply(BigDecimal.valueOf(b.price));
                e.dateTime = b.dateTime;
                e.extra = b.extra;
                return e;
            }
        });
        DataStream<EuroBid> selected = euros.filter(new FilterFunction<EuroBid>() {
            @Override
            public boolean filter(EuroBid e) {
                return e.auction % 123 == 0;
            }
        });
        DataStream<String> counts = selected.keyBy(e -> e.auction)
                .process(new KeyedProcessFunction<Long, EuroBid, String>() {
                    private transient ValueState<Long> count;

                    @Override
                    public void open(OpenContext ctx) {
                        count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Types.LONG));
                    }

                    @Override
                    public void processElement(EuroBid e, Context ctx, Collector<String> out) throws Exception {
                        Long n = count.value();
                        long next = (n == null ? 0 : n) + 1;
                        count.update(next);
                        out.collect("{\"auction\":" + e.auction + ",\"count\":" + next + "}");
                    }
                });
        sinkTo(counts, sink);
        env.execute("flink-compare-udf");
    }

    /** Welford's running statistics, as udfs/nab-zscore keeps them. */
    public static class Stats {
        public long n;
        public double mean;
        public double m2;
        public Stats() {}
    }

    /** A NAB reading: its series, timestamp text, event time (ms) and value. */
    public static class Reading {
        public String series;
        public String timestamp;
        public long time;
        public double value;
        public Reading() {}
    }

    static final DateTimeFormatter NAB_TIME = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss");

    static void runNab(Configuration conf, String file, String sink) throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        FileSource<String> source =
                FileSource.forRecordStreamFormat(new TextLineInputFormat(), new Path(file)).build();
        DataStream<Reading> readings = env
                .fromSource(source, WatermarkStrategy.noWatermarks(), "readings")
                .flatMap(new FlatMapFunction<String, Reading>() {
                    @Override
                    public void flatMap(String line, Collector<Reading> out) {
                        if (line.startsWith("series,")) {
                            return;
                        }
                        String[] f = line.split(",", 3);
                        Reading r = new Reading();
                        r.series = f[0];
                        r.timestamp = f[1];
                        r.time = LocalDateTime.parse(f[1], NAB_TIME).toInstant(ZoneOffset.UTC).toEpochMilli();
                        r.value = Double.parseDouble(f[2]);
                        out.collect(r);
                    }
                })
                .assignTimestampsAndWatermarks(WatermarkStrategy
                        .<Reading>forBoundedOutOfOrderness(Duration.ofHours(1))
                        .withTimestampAssigner((r, previous) -> r.time));
        DataStream<String> alerts = readings.keyBy(r -> r.series).process(new ZScore(30, 4.0));
        sinkTo(alerts, sink);
        env.execute("flink-compare-nab");
    }

    /** udfs/nab-zscore with `event_time: true`. */
    public static class ZScore extends KeyedProcessFunction<String, Reading, String> {
        private final long warmup;
        private final double threshold;
        private transient ValueState<Stats> stats;
        private transient MapState<Long, List<Reading>> pending;

        ZScore(long warmup, double threshold) {
            this.warmup = warmup;
            this.threshold = threshold;
        }

        @Override
        public void open(OpenContext ctx) {
            stats = getRuntimeContext().getState(new ValueStateDescriptor<>("welford", Stats.class));
            pending = getRuntimeContext().getMapState(new MapStateDescriptor<>("pending", Types.LONG,
                    TypeInformation.of(new TypeHint<List<Reading>>() {})));
        }

        @Override
        public void processElement(Reading r, Context ctx, Collector<String> out) throws Exception {
            long ts = ctx.timestamp();
            if (ts <= ctx.timerService().currentWatermark()) {
                return; // late: Weir's job sends it to a side output
            }
            List<Reading> waiting = pending.get(ts);
            if (waiting == null) {
                waiting = new ArrayList<>();
            }
            waiting.add(r);
            pending.put(ts, waiting);
            ctx.timerService().registerEventTimeTimer(ts);
        }

        @Override
        public void onTimer(long timestamp, OnTimerContext ctx, Collector<String> out) throws Exception {
            List<Reading> waiting = pending.get(timestamp);
            pending.remove(timestamp);
            if (waiting == null) {
                return;
            }
            for (Reading r : waiting) {
                score(r, out);
            }
        }

        private void score(Reading r, Collector<String> out) throws Exception {
            Stats s = stats.value();
            if (s == null) {
                s = new Stats();
            }
            double x = r.value;
            if (s.n >= warmup && s.n >= 2) {
                double std = Math.sqrt(s.m2 / (s.n - 1));
                double z = std > 0 ? (x - s.mean) / std : 0;
                if (Math.abs(z) >= threshold) {
                    out.collect("{\"series\":\"" + r.series + "\",\"timestamp\":\"" + r.timestamp
                            + "\",\"value\":" + x + ",\"z\":" + z + "}");
                }
            }
            s.n += 1;
            double delta = x - s.mean;
            s.mean += delta / s.n;
            s.m2 += delta * (x - s.mean);
            stats.update(s);
        }
    }
}
