# Live-migration downtime per case, ferry vs QEMU: grouped bars of the median
# with min-max error bars, log scale. Made by bench/migrate.py:
#   gnuplot -e "datafile='bench/out/migrate.dat'; outfile='bench/out/migrate.png'; target=5; plottitle='...'" bench/plot_migrate.gp
# Data columns: case, then (median, min, max) of ferry's downtime, QEMU's
# reported downtime, QEMU's pause -> destination running (QMP events), in ms;
# values below 0.05 ms (QEMU's 0) are written as 0.05.
if (!exists("datafile")) datafile = 'bench/out/migrate.dat'
if (!exists("outfile")) outfile = 'bench/out/migrate.png'
if (!exists("target")) target = 5
if (!exists("plottitle")) plottitle = 'live-migration downtime'

set terminal pngcairo size 1100,620 font ",10"
set output outfile
set title plottitle
set ylabel "downtime (ms, log scale)"
set logscale y
set yrange [0.02:*]
set grid ytics mytics
set key top left
set style data histograms
set style histogram errorbars gap 2 lw 1
set style fill solid 0.75 border -1
set boxwidth 0.9
set bars front
set xtics nomirror
set arrow from graph 0, first target to graph 1, first target nohead dt 2 lw 1.5 lc rgb "#aa0000"
set xlabel "QEMU reports whole ms: its 0 ms is drawn at 0.05 ms" font ",9"
set label sprintf("target %g ms", target) at graph 0.99, first target * 1.15 right tc rgb "#aa0000"

plot datafile using 2:3:4:xtic(1) title "ferry (pause -> destination running)" lc rgb "#1f77b4", \
     '' using 5:6:7 title "QEMU TCG (reported downtime)" lc rgb "#ff7f0e", \
     '' using 8:9:10 title "QEMU TCG (STOP -> destination RESUME, QMP events)" lc rgb "#bbbbbb"
